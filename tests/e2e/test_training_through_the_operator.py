"""Real training through the operator: pods on local nodes run the trainer as processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.harness import LocalNodes, OperatorProcess
from tests.kube import Kube, wait_until
from tools.nodeagent.config import netns_name

EPOCHS = 15  # the digits MLP passes 95% held-out accuracy well before this
DIGITS_ARGS = ["--workload", "digits", "--checkpoint-every", "20"]


def digits_job(name: str = "digits", replicas: int = 2) -> dict[str, Any]:
    """The examples' digits job, pinned to local nodes, with a shared checkpoint volume."""
    trainer = {
        "name": "trainer",
        "image": "ringleader-trainer:0.1.0",
        "command": ["python", "-m", "ringleader_trainer.launch"],
        # Paced (about 20 s of steps) so that progress is polled while the job still runs.
        "args": [*DIGITS_ARGS, "--epochs", str(EPOCHS), "--min-step-seconds", "0.06"],
        "resources": {"requests": {"cpu": "1"}},
    }
    template = {
        "spec": {
            "nodeSelector": {"ringleader.dev/node-pool": "local"},
            "terminationGracePeriodSeconds": 20,
            "containers": [trainer],
        }
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "checkpoint": {"size": "1Gi"}, "template": template},
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

    return wait_until(probe, timeout=timeout, what=what)


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


def processes_in(namespace: str) -> list[int]:
    """Pids of processes started for pods of a namespace (found by their contract env)."""
    marker = f"RINGLEADER_NAMESPACE={namespace}".encode() + b"\0"
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def final_evaluation(local_nodes: LocalNodes, namespace: str, pod: str) -> dict[str, float]:
    """The evaluation the trainer printed when it finished (from the pod's log)."""
    log = local_nodes.state.log_file(namespace, pod, "trainer").read_text()
    marker = "ringleader: training finished; evaluation "
    line = next(line for line in log.splitlines() if marker in line)
    evaluation: dict[str, float] = json.loads(line.split(marker, 1)[1])
    return evaluation


def test_a_digits_job_trains_to_target_accuracy_and_reports_progress_and_checkpoint(
    kube: Kube, operator: OperatorProcess, local_nodes: LocalNodes, namespace: str
) -> None:
    kube.apply(digits_job(), namespace)
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
    status = wait_finished(kube, namespace, "digits", timeout=420)
    assert status["phase"] == "Succeeded", (status, operator.log_tail())
    assert status["completionTime"]
    # The trainer ends with a checkpoint of its last step; its termination message carries the
    # final report to status, written with the phase: a Succeeded job never shows an older step.
    assert status["progress"]["step"] == status["checkpoint"]["step"], status
    assert status["checkpoint"]["path"].endswith(f"{status['progress']['step']:09d}")
    assert final_evaluation(local_nodes, namespace, "digits-worker-0-a0")["accuracy"] >= 0.95


def test_deleting_a_running_job_leaves_no_process_network_namespace_or_mount(
    kube: Kube, operator: OperatorProcess, local_nodes: LocalNodes, namespace: str
) -> None:
    job = digits_job("brief", replicas=1)
    slow = [*DIGITS_ARGS, "--epochs", "200", "--min-step-seconds", "0.2"]  # still running later
    job["spec"]["template"]["spec"]["containers"][0]["args"] = slow
    kube.apply(job, namespace)
    status_when(
        kube, namespace, "brief", lambda s: s.get("phase") == "Running", timeout=120, what="running"
    )
    wait_until(lambda: processes_in(namespace), timeout=60, what="the trainer processes")
    uids = [p["metadata"]["uid"] for p in kube.get("pods", namespace=namespace)["items"]]
    kube.run("delete", "dtj", "brief", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: not kube.get("pods", namespace=namespace)["items"],
        timeout=90,
        what="every pod of the job gone",
    )
    netns = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
    assert not any(netns_name(uid) in netns.stdout for uid in uids)
    mounts = Path("/proc/mounts").read_text()
    assert not any(uid in mounts for uid in uids)
    assert processes_in(namespace) == []
