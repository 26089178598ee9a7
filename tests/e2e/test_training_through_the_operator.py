"""Real training through the operator installed by its Helm chart, on real nodes: the trainer
image's workers run as non-root with a read-only root filesystem and no capabilities, in a
namespace that enforces the restricted Pod Security Standard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.diagnosis import cluster_state
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube, wait_until, worker_name
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL

EPOCHS = 15  # the digits MLP passes 95% held-out accuracy well before this
DIGITS_ARGS = ["--workload", "digits", "--checkpoint-every", "20"]
TRAINER_USER = 1000  # the trainer image's own user
# What the restricted standard requires of every pod, and what the trainer then needs writable:
# /tmp (torch's elastic agent and its forkserver keep sockets and logs there). /dev/shm and the
# checkpoint volume come from the operator.
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": TRAINER_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SCRATCH = {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}


def restricted_pod_spec(container: dict[str, Any], *volumes: dict[str, Any]) -> dict[str, Any]:
    """A worker pod spec on the local nodes that the restricted standard admits, /tmp writable."""
    container = {
        "imagePullPolicy": "Never",  # built here, imported into the nodes: no registry to pull
        **container,
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            *container.get("volumeMounts", []),
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
        "terminationGracePeriodSeconds": 20,
        "securityContext": RESTRICTED_POD,
        "containers": [container],
        "volumes": [*volumes, SCRATCH],
    }


def example_on_local_nodes(
    path: Path, image: str, step_seconds: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """An example job as shipped (its one container), in a locally built image, its steps
    paced by STEP_SECONDS to be caught mid-run, `env` replacing values the example sets, and
    restricted as the local nodes' namespaces require: the root filesystem is read-only, so
    HOME (for any framework's cache) is the scratch volume; half a core asked, the machine has 2."""
    job: dict[str, Any] = yaml.safe_load(path.read_text())
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    container["image"] = image
    shipped = {var["name"]: var for var in container["env"]}
    for name, value in (env or {}).items():
        shipped[name]["value"] = value
    container["env"] += [
        {"name": "STEP_SECONDS", "value": step_seconds},
        {"name": "HOME", "value": "/tmp"},
    ]
    container["resources"] = {"requests": {"cpu": "500m"}}
    job["spec"]["template"]["spec"] = restricted_pod_spec(container, *pod["volumes"])
    return job


def digits_job(name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    """The examples' digits job on the local nodes, with a shared checkpoint volume."""
    trainer = {
        "name": "trainer",
        "image": image,
        "command": ["python", "-m", "ringleader_trainer.launch"],
        # Paced (about 20 s of steps) so that progress is polled while the job still runs.
        "args": [*DIGITS_ARGS, "--epochs", str(EPOCHS), "--min-step-seconds", "0.06"],
        "resources": {"requests": {"cpu": "500m"}},
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "checkpoint": {"size": "1Gi"},
            "template": {"spec": restricted_pod_spec(trainer)},
        },
    }


def job_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    job: dict[str, Any] = kube.get("dtj", name, namespace=namespace)
    return dict(job.get("status") or {})


def status_when(
    kube: Kube, namespace: str, name: str, test: Any, *, timeout: float, what: str
) -> dict[str, Any]:
    """The job's status once test(status) holds."""

    def probe() -> dict[str, Any] | None:
        status = job_status(kube, namespace, name)
        return status if test(status) else None

    try:
        return wait_until(probe, timeout=timeout, what=what)
    except AssertionError as gave_up:
        phase = job_status(kube, namespace, name).get("phase")
        state = cluster_state(kube, namespace)
        raise AssertionError(f"{gave_up} (phase {phase}; {state})") from None


def wait_finished(kube: Kube, namespace: str, name: str, *, timeout: float) -> dict[str, Any]:
    """The job's status once it has Succeeded or Failed."""
    return status_when(
        kube,
        namespace,
        name,
        lambda s: s.get("phase") in ("Succeeded", "Failed"),
        timeout=timeout,
        what=f"{name} finished",
    )


def pod_log(kube: Kube, namespace: str, pod: str) -> str:
    """`kubectl logs` of the pod's trainer container."""
    return kube.run("logs", "-n", namespace, pod, "-c", "trainer")


def final_evaluation(kube: Kube, namespace: str, pod: str) -> dict[str, float]:
    """The evaluation the trainer printed when it finished (from the pod's log)."""
    marker = "ringleader: training finished; evaluation "
    line = next(line for line in pod_log(kube, namespace, pod).splitlines() if marker in line)
    evaluation: dict[str, float] = json.loads(line.split(marker, 1)[1])
    return evaluation


INSIDE = """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
def writable(path):
    try:
        open(os.path.join(path, ".probe"), "w").close()
        return True
    except OSError:
        return False
print(json.dumps({"uid": os.getuid(), "cap_eff": status["CapEff"].strip(),
                  "writable": {p: writable(p) for p in ("/", "/home/trainer", "/tmp", "/dev/shm",
                                                        "/checkpoints")}}))
"""


def look_inside(kube: Kube, namespace: str, pod: str) -> dict[str, Any]:
    """What `kubectl exec` into a worker finds: its user, capabilities, writable paths."""
    out = kube.run("exec", "-n", namespace, pod, "-c", "trainer", "--", "python", "-c", INSIDE)
    found: dict[str, Any] = json.loads(out)
    return found


def test_a_digits_job_trains_to_target_accuracy_as_a_restricted_pod_and_reports_progress(
    kube: Kube, operator: InstalledOperator, trainer_image: str, namespace: str
) -> None:
    kube.apply(digits_job("digits", trainer_image), namespace)
    running = status_when(
        kube,
        namespace,
        "digits",
        lambda s: (s.get("progress") or {}).get("step"),
        timeout=180,
        what="progress mirrored into status while training",
    )
    assert running["phase"] == "Running"
    pods = kube.get("pods", namespace=namespace)["items"]
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == len(pods) == 3, ips  # two workers and the store, each its own IP
    worker_0 = worker_name(kube, namespace, "digits", 0)
    inside = look_inside(kube, namespace, worker_0)
    assert (inside["uid"], inside["cap_eff"]) == (TRAINER_USER, "0000000000000000")
    writable = {"/": False, "/home/trainer": False, "/tmp": True, "/dev/shm": True}
    assert inside["writable"] == {**writable, "/checkpoints": True}
    status = wait_finished(kube, namespace, "digits", timeout=420)
    assert status["phase"] == "Succeeded", (status, operator.log_tail())
    assert status["completionTime"]
    # The trainer ends with a checkpoint of its last step; its termination message carries the
    # final report to status, written with the phase: a Succeeded job never shows an older step.
    assert status["progress"]["step"] == status["checkpoint"]["step"], status
    assert status["checkpoint"]["path"].endswith(f"{status['progress']['step']:09d}")
    assert final_evaluation(kube, namespace, worker_0)["accuracy"] >= 0.95


def test_deleting_a_running_job_leaves_no_process_container_or_mount_on_the_nodes(
    kube: Kube, operator: InstalledOperator, local_nodes: LocalNodes, trainer_image: str,
    namespace: str,
) -> None:  # fmt: skip
    job = digits_job("brief", trainer_image, replicas=1)
    slow = [*DIGITS_ARGS, "--epochs", "200", "--min-step-seconds", "0.2"]  # still running later
    job["spec"]["template"]["spec"]["containers"][0]["args"] = slow
    kube.apply(job, namespace)
    status_when(
        kube, namespace, "brief", lambda s: s.get("phase") == "Running", timeout=120, what="running"
    )
    uids = [p["metadata"]["uid"] for p in kube.get("pods", namespace=namespace)["items"]]
    wait_until(lambda: local_nodes.leftovers(uids)["processes"], what="the trainer processes")
    kube.run("delete", "dtj", "brief", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: not kube.get("pods", namespace=namespace)["items"],
        timeout=90,
        what="every pod of the job gone",
    )
    # The kubelet removes the stopped containers of deleted pods in its container GC (once a
    # minute); the processes and mounts go with the pods.
    wait_until(
        lambda: not any(local_nodes.leftovers(uids).values()),
        timeout=150,
        interval=2,
        what="nothing of the job's pods left on the nodes",
    )
