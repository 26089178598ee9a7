"""Pods on real nodes behave as on any cluster: logs, exec, networking, DNS, security, limits."""

from __future__ import annotations

import json

from tests.harness import LocalNodes
from tests.kube import Kube, wait_until
from tests.realnodes.conftest import pod, terminated, wait_ready


def _on(node: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": node}


def test_a_pod_on_a_real_node_becomes_ready_and_serves_logs_and_exec(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    script = "import socket, time; print('hello from', socket.gethostname()); time.sleep(600)"
    container = {
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
    }
    manifest = pod(
        "hello", base_image, ["python3", "-c", script],
        nodeSelector=_on(local_nodes.names[0]), container=container,
    )  # fmt: skip
    kube.apply(manifest, namespace)
    wait_ready(kube, namespace, "hello")
    status = kube.get("pod", "hello", namespace)["status"]
    assert status["hostIP"] != status["podIP"]
    assert wait_until(lambda: "hello from hello" in kube.run("logs", "-n", namespace, "hello"))
    echoed = kube.run(
        "exec", "-i", "-n", namespace, "hello", "--",
        "python3", "-c", "import sys; print(sys.stdin.read().upper())",
        stdin="ping from the test",
    )  # fmt: skip
    assert echoed.strip() == "PING FROM THE TEST"


PROBE = """
import json, socket, sys, urllib.request
names = sys.argv[2:]
answers = {name: sorted(socket.gethostbyname_ex(name)[2]) for name in names}
answers["http"] = urllib.request.urlopen(f"http://{sys.argv[1]}:8000/", timeout=5).status
print(json.dumps(answers))
"""


def test_pods_on_different_nodes_reach_each_other_by_ip_and_by_headless_service_names(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "selector": {"app": "peers"}, "ports": [{"port": 8000}]},
    }
    server = ["python3", "-m", "http.server", "8000"]
    labels = {"labels": {"app": "peers"}}
    pods = [
        pod(name, base_image, server, nodeSelector=_on(node), hostname=name, subdomain="peers",
            metadata=labels)
        for name, node in zip(["pa", "pb"], local_nodes.names, strict=True)
    ]  # fmt: skip
    kube.apply([service, *pods], namespace)
    wait_ready(kube, namespace, "pa", "pb")
    ips = {name: kube.get("pod", name, namespace)["status"]["podIP"] for name in ("pa", "pb")}
    names = [
        "peers.{ns}.svc", "peers.{ns}.svc.cluster.local",
        "pb.peers", "pb.peers.{ns}.svc", "pb.peers.{ns}.svc.cluster.local",
    ]  # fmt: skip
    names = [name.format(ns=namespace) for name in names]

    def answers() -> dict[str, object] | None:
        argv = ["exec", "-n", namespace, "pa", "--", "python3", "-c", PROBE, ips["pb"], *names]
        found: dict[str, object] = json.loads(kube.run(*argv, check=False) or "{}")
        return found if found.get(names[0]) == sorted(ips.values()) else None

    found = wait_until(answers, timeout=30, what="DNS answers for both pods")
    assert found["http"] == 200
    assert found[f"peers.{namespace}.svc.cluster.local"] == sorted(ips.values())
    for name in names[2:]:
        assert found[name] == [ips["pb"]], name


API_VERSION = """
import json, os, ssl, urllib.request
secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
context = ssl.create_default_context(cafile=f"{secrets}/ca.crt")
token = open(f"{secrets}/token").read()
request = urllib.request.Request(f"https://{host}:{port}/version",
                                 headers={"Authorization": f"Bearer {token}"})
version = json.load(urllib.request.urlopen(request, context=context, timeout=10))
print(json.dumps({"host": host, "port": port, "version": version["gitVersion"]}))
"""


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    manifest = pod("api", base_image, ["python3", "-c", API_VERSION])
    kube.apply(manifest, namespace)
    state = terminated(kube, namespace, "api")
    log = kube.run("logs", "-n", namespace, "api")
    assert state["exitCode"] == 0, log
    # 10.96.0.1:443 is the Service's ClusterIP: kube-proxy routes it; TLS checks the cluster CA.
    assert json.loads(log) == {"host": "10.96.0.1", "port": "443", "version": "v1.36.3"}


RESTRICTED_CHECK = """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
try:
    open("/written", "w")
    writable = True
except OSError:
    writable = False
print(json.dumps({"uid": os.getuid(), "root_writable": writable,
                  "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                  "seccomp": status["Seccomp"].strip()}))
"""


def test_a_pod_with_a_restricted_security_context_runs_as_asked(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    container_context = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod_context = {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    manifest = pod(
        "restricted", base_image, ["python3", "-c", RESTRICTED_CHECK],
        securityContext=pod_context, container={"securityContext": container_context},
    )  # fmt: skip
    kube.apply(manifest, namespace)
    assert terminated(kube, namespace, "restricted")["exitCode"] == 0
    seen = json.loads(kube.run("logs", "-n", namespace, "restricted"))
    assert seen == {
        "uid": 65534,
        "root_writable": False,
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "seccomp": "2",  # filter mode: the runtime's default profile
    }


def test_a_pod_over_its_memory_limit_is_oom_killed(
    kube: Kube, namespace: str, local_nodes: LocalNodes, base_image: str
) -> None:
    allocate = "import time; block = b'x' * (200 << 20); time.sleep(60)"
    limits = {"resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}
    kube.apply(pod("hog", base_image, ["python3", "-c", allocate], container=limits), namespace)
    state = terminated(kube, namespace, "hog")
    assert (state["exitCode"], state["reason"]) == (137, "OOMKilled")
