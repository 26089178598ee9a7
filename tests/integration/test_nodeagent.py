"""The local node agent runs pods as real processes: env, status, DNS, volumes, deletion."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import node_ready
from tests.kube import Kube, wait_until
from tools.nodeagent.config import StateDir, netns_name, veth_names

# The agent's nodes, apart from the developer cluster's agent (rlbr0, 10.250/16) and from the
# real nodes local-N the e2e tests run.
LOCAL_NODES = ["local-test-0", "local-test-1"]
LOCAL_BRIDGE, LOCAL_POD_CIDR = "rlbr9", "10.249.0.0/16"


@dataclass(frozen=True)
class LocalNodes:
    """The node agent started for these tests (the benches still run on it; the tests and the
    demo run on real nodes)."""

    state: StateDir
    process: subprocess.Popen[bytes]


def start_node_agent(kubeconfig: Path, state: Path) -> subprocess.Popen[bytes]:
    """Start the local node agent for LOCAL_NODES (it removes its nodes when stopped)."""
    argv = [
        sys.executable, "-m", "tools.nodeagent", f"--kubeconfig={kubeconfig}",
        f"--state-dir={state}", f"--bridge={LOCAL_BRIDGE}", f"--pod-cidr={LOCAL_POD_CIDR}",
        "--unregister", *[f"--node={name}" for name in LOCAL_NODES],
    ]  # fmt: skip
    with open(state / "agent.log", "ab") as log:
        return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def local_nodes(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    """A node agent with two local nodes that run pods as processes, stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the local node agent needs root")
    state = tmp_path_factory.mktemp("nodeagent")
    process = start_node_agent(kube.kubeconfig, state)
    try:
        for name in LOCAL_NODES:
            wait_until(functools.partial(node_ready, kube, name), what=f"node {name} Ready")
        yield LocalNodes(StateDir(state), process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


REPO_ROOT = Path(__file__).resolve().parents[2]


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A pod on a local node running `python -c script`."""
    container = {"name": "main", "image": "example.com/any:1", "command": ["python", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {
            "nodeSelector": {"ringleader.dev/node-pool": "local"},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [container],
            **spec,
        },
    }


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def _host_dir(path: Path) -> dict[str, Any]:
    return {"name": "out", "hostPath": {"path": str(path), "type": "Directory"}}


def _out_mount() -> dict[str, Any]:
    return {"volumeMounts": [{"name": "out", "mountPath": "/out"}]}


def _phase(kube: Kube, namespace: str, name: str, *phases: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = kube.get("pod", name, namespace=namespace)
    return pod if pod["status"].get("phase") in phases else None


def _finished(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return wait_until(
        lambda: _phase(kube, namespace, name, "Succeeded", "Failed"), what=f"{name} finished"
    )


ENV_SCRIPT = """
import json, os, socket
keys = ["POD", "NS", "UID", "IP", "NODE", "HOST_IP", "GREETING", "FROM_MAP", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS"]
out = {key: os.environ.get(key) for key in keys}
out["hostname"], out["cwd"] = socket.gethostname(), os.getcwd()
out["self"] = socket.gethostbyname(socket.gethostname())
json.dump(out, open("/out/env.json", "w"))
print("env written")
"""


def test_a_pod_runs_to_success_with_its_env_resolved(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    kube.run("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=fast")
    env = [
        {"name": "POD", **_field("metadata.name")},
        {"name": "NS", **_field("metadata.namespace")},
        {"name": "UID", **_field("metadata.uid")},
        {"name": "IP", **_field("status.podIP")},
        {"name": "NODE", **_field("spec.nodeName")},
        {"name": "HOST_IP", **_field("status.hostIP")},
        {"name": "GREETING", "value": "hello $(POD)"},
        {"name": "FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]
    container = {"env": env, "workingDir": "/tmp", "resources": {"requests": {"cpu": "1500m"}}}
    container.update(_out_mount())
    kube.apply(
        _pod("env", ENV_SCRIPT, container=container, volumes=[_host_dir(tmp_path)]), namespace
    )
    pod = _finished(kube, namespace, "env")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    seen = json.loads((tmp_path / "env.json").read_text())
    assert seen == {
        "POD": "env", "NS": namespace, "UID": pod["metadata"]["uid"],
        "IP": pod["status"]["podIP"], "NODE": pod["spec"]["nodeName"],
        "HOST_IP": pod["status"]["hostIP"], "GREETING": "hello env", "FROM_MAP": "fast",
        "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "hostname": "env", "cwd": "/tmp",
        "self": pod["status"]["podIP"],
    }  # fmt: skip
    assert pod["status"]["podIP"].startswith("10.249.")
    log = local_nodes.state.log_file(namespace, "env", "main").read_text()
    assert "env written" in log


def test_a_container_exiting_3_fails_the_pod_with_exit_code_3_and_its_last_words(
    kube: Kube, namespace: str, local_nodes: LocalNodes
) -> None:
    script = "open('/dev/termination-log', 'w').write('last words'); raise SystemExit(3)"
    kube.apply(_pod("three", script), namespace)
    pod = _finished(kube, namespace, "three")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == "last words"  # the kubelet's terminationMessagePath


SERVER_SCRIPT = """
import socket
server = socket.create_server(("0.0.0.0", 7000))
while True:
    connection, _ = server.accept()
    connection.sendall(socket.gethostname().encode())
    connection.close()
"""

CLIENT_SCRIPT = """
import os, socket, time
name = "b.workers." + os.environ["NS"] + ".svc"
for attempt in range(100):
    try:
        with socket.create_connection((name, 7000), timeout=2) as connection:
            reply = connection.recv(100).decode()
        break
    except OSError:
        time.sleep(0.3)
open("/out/reply", "w").write(reply + " " + socket.gethostbyname(name))
"""


def test_pods_reach_each_other_by_their_headless_service_dns_names(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "workers"},
        "spec": {"clusterIP": "None", "selector": {"app": "workers"}},
    }
    labels = {"labels": {"app": "workers"}}
    server = _pod("b", SERVER_SCRIPT, metadata=labels, hostname="b", subdomain="workers")
    ns_env = {
        "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    }
    client = _pod(
        "a", CLIENT_SCRIPT, metadata=labels, hostname="a", subdomain="workers",
        container={**ns_env, **_out_mount()}, volumes=[_host_dir(tmp_path)],
    )  # fmt: skip
    kube.apply([service, server, client], namespace)
    a = _finished(kube, namespace, "a")
    assert a["status"]["phase"] == "Succeeded"
    b = kube.get("pod", "b", namespace=namespace)
    reply, resolved = (tmp_path / "reply").read_text().split()
    assert reply == "b"
    assert resolved == b["status"]["podIP"]
    assert a["status"]["podIP"] != b["status"]["podIP"]


def test_a_claim_is_provisioned_bound_and_shared_by_the_pods_that_mount_it(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "shared"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    mounts = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    writer = _pod("writer", "open('/data/note', 'w').write('from writer')", container=mounts,
                  volumes=volumes)  # fmt: skip
    kube.apply([claim, writer], namespace)
    assert _finished(kube, namespace, "writer")["status"]["phase"] == "Succeeded"
    pvc = kube.get("pvc", "shared", namespace=namespace)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "ringleader-local"
    script = "open('/out/seen', 'w').write(open('/data/note').read())"
    both = {"volumeMounts": [*mounts["volumeMounts"], *_out_mount()["volumeMounts"]]}
    reader = _pod("reader", script, container=both, volumes=[*volumes, _host_dir(tmp_path)])
    kube.apply(reader, namespace)
    assert _finished(kube, namespace, "reader")["status"]["phase"] == "Succeeded"
    assert (tmp_path / "seen").read_text() == "from writer"


def test_a_memory_empty_dir_at_dev_shm_is_a_sized_tmpfs(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    script = (
        "lines = [l for l in open('/proc/self/mounts') if ' /dev/shm ' in l]\n"
        "open('/out/shm', 'w').write(lines[-1])"  # the last mount on a path is the visible one
    )
    shm = {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    mounts = {
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}, *_out_mount()["volumeMounts"]]
    }
    kube.apply(_pod("shm", script, container=mounts, volumes=[shm, _host_dir(tmp_path)]), namespace)
    assert _finished(kube, namespace, "shm")["status"]["phase"] == "Succeeded"
    fields = (tmp_path / "shm").read_text().split()
    assert fields[1:3] == ["/dev/shm", "tmpfs"]
    assert "size=65536k" in fields[3]


TERM_SCRIPT = """
import signal, sys, time
def stop(*_):
    open("/out/signal", "w").write("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open("/out/started", "w").write("yes")
while True:
    time.sleep(0.1)
"""


def _leftovers(uid: str, pid: int) -> list[str]:
    found = []
    if Path(f"/proc/{pid}").exists():
        found.append(f"process {pid}")
    if Path("/run/netns", netns_name(uid)).exists():
        found.append(f"netns {netns_name(uid)}")
    found += [f"veth {v}" for v in veth_names(uid) if Path("/sys/class/net", v).exists()]
    found += [line for line in Path("/proc/mounts").read_text().splitlines() if uid in line]
    return found


def test_deleting_a_running_pod_sends_sigterm_and_leaves_nothing_behind(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    shm = {"name": "shm", "emptyDir": {"medium": "Memory"}}
    mounts = {
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}, *_out_mount()["volumeMounts"]]
    }
    victim = _pod("victim", TERM_SCRIPT, container=mounts, volumes=[shm, _host_dir(tmp_path)])
    kube.apply(victim, namespace)
    wait_until((tmp_path / "started").exists, what="victim started")
    pod = wait_until(lambda: _phase(kube, namespace, "victim", "Running"), what="victim Running")
    uid = pod["metadata"]["uid"]
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))
    assert _leftovers(uid, pid), "the probe for leftovers sees a running pod"
    kube.run("delete", "pod", "victim", "-n", namespace, "--timeout=60s")
    assert (tmp_path / "signal").read_text() == "SIGTERM"
    assert _leftovers(uid, pid) == []


def test_restart_policy_always_restarts_the_container_in_place(
    kube: Kube, namespace: str, local_nodes: LocalNodes
) -> None:
    kube.apply(_pod("flaky", "raise SystemExit(1)", restartPolicy="Always"), namespace)

    def restarted_twice() -> dict[str, Any] | None:
        pod = kube.get("pod", "flaky", namespace=namespace)
        statuses = pod["status"].get("containerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 2 else None

    pod = wait_until(restarted_twice, what="two restarts")
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"
    assert (
        pod["metadata"]["uid"] == kube.get("pod", "flaky", namespace=namespace)["metadata"]["uid"]
    )


def _ready(kube: Kube, namespace: str, name: str) -> str:
    pod = kube.get("pod", name, namespace=namespace)
    conditions = pod["status"].get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


def test_an_exec_readiness_probe_gates_the_ready_condition(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    probe = {"exec": {"command": ["test", "-f", "/out/ready"]}, "periodSeconds": 1}
    container = {"readinessProbe": probe, **_out_mount()}
    pod = _pod("gated", "import time; time.sleep(300)", container=container,
               volumes=[_host_dir(tmp_path)])  # fmt: skip
    kube.apply(pod, namespace)
    wait_until(lambda: _phase(kube, namespace, "gated", "Running"), what="gated Running")
    wait_until(lambda: _ready(kube, namespace, "gated") == "False", what="Ready False")
    (tmp_path / "ready").touch()
    wait_until(lambda: _ready(kube, namespace, "gated") == "True", what="Ready True")
    (tmp_path / "ready").unlink()
    wait_until(lambda: _ready(kube, namespace, "gated") == "False", what="Ready False again")


def test_a_deleted_node_loses_its_pods_without_a_signal_and_registers_again_once_they_are_gone(
    kube: Kube, namespace: str, local_nodes: LocalNodes, tmp_path: Path
) -> None:
    node = "local-test-1"
    old_uid = kube.get("node", node)["metadata"]["uid"]
    victim = _pod("on-lost-node", TERM_SCRIPT, container=_out_mount(), nodeName=node)
    victim["spec"]["volumes"] = [_host_dir(tmp_path)]
    kube.apply(victim, namespace)
    wait_until((tmp_path / "started").exists, what="the pod started")
    pod = wait_until(lambda: _phase(kube, namespace, "on-lost-node", "Running"), what="Running")
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))

    kube.run("delete", "node", node)
    # The machine is gone: its process dies at once, with no SIGTERM to catch.
    uid = pod["metadata"]["uid"]
    wait_until(lambda: _leftovers(uid, pid) == [], what="the pod's process and sandbox gone")
    assert not (tmp_path / "signal").exists()
    # Nobody reports for the pod any more; Kubernetes (PodGC, after 40 s) or a user removes it.
    assert kube.get("pod", "on-lost-node", namespace=namespace)["status"]["phase"] == "Running"
    kube.run("delete", "pod", "on-lost-node", "-n", namespace, "--force", "--grace-period=0")

    def registered_again() -> bool:
        uids = {n["metadata"]["name"]: n["metadata"]["uid"] for n in kube.get("nodes")["items"]}
        return uids.get(node, old_uid) != old_uid and node_ready(kube, node)

    wait_until(registered_again, what=f"{node} registered again")
