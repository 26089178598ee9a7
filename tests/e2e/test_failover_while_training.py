"""Two replicas of the operator (the chart's HA mode: `helm upgrade --set replicas=2`) while a
job trains on real nodes: the active one's processes are SIGKILLed. The kubelet restarts that
container in place, under the same peering identity with a new random priority, so the replica
that works next is whichever of the two then has the higher priority: the standby, once the dead
one's record has expired, or the restarted one. Training goes on undisturbed either way; the
replica that works rebuilds what the dead one held in memory (the job's step pace, the workers
it polls) from what it sees, so the gap in polling is no hang, and progress goes on being
mirrored."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    job_status,
    status_when,
    wait_finished,
)
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube, wait_until
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.localcluster.operatorchart import RELEASE

# Hang called when the step stands still 10 s: less than the takeover takes, so a standby that
# judged the pause in polling as a stalled step would call a hang.
HANG_DETECTION = {"minSeconds": 10, "stepTimeMultiple": 10}
PEERING_LIFETIME = 15  # a standby takes over this long after the active replica died
PEERING = RELEASE  # the chart names the peering object after the release


def step(status: dict[str, object]) -> int:
    progress = status.get("progress") or {}
    assert isinstance(progress, dict)
    return int(progress.get("step") or 0)


def running_replicas(kube: Kube) -> list[str]:
    """The operator pods that run and are not being deleted."""
    pods = kube.get("pods", namespace=OPERATOR_NAMESPACE)["items"]
    return [
        p["metadata"]["name"]
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def active_and_standby(kube: Kube) -> tuple[str, str] | None:
    """(active, standby) once two replicas run and both are in the peering record: kopf lets the
    highest priority work (a replica that finds a higher one at its start pauses silently)."""
    running = running_replicas(kube)
    peers = kube.get("clusterkopfpeering", PEERING).get("status") or {}
    ranked = sorted(
        (name for name in running if name in peers),
        key=lambda name: int(peers[name]["priority"]),
        reverse=True,
    )
    return (ranked[0], ranked[1]) if len(running) == len(ranked) == 2 else None


@pytest.fixture
def two_replicas(
    kube: Kube, operator: InstalledOperator, local_nodes: LocalNodes
) -> Iterator[tuple[str, str]]:
    """The chart upgraded to two replicas; (active, standby) pod names. One replica again after."""
    peering = {"lifetimeSeconds": PEERING_LIFETIME}
    local_nodes.cluster.install_operator(replicas=2, peering=peering)
    try:
        yield wait_until(lambda: active_and_standby(kube), timeout=120, what="active and standby")
    finally:
        local_nodes.cluster.install_operator()


def container_restarts(kube: Kube, pod: str) -> int:
    found = kube.get("pod", pod, namespace=OPERATOR_NAMESPACE)["status"]
    return int(found["containerStatuses"][0]["restartCount"])


def kill_pod_processes(local_nodes: LocalNodes, kube: Kube, pod: str) -> None:
    """SIGKILL every process of the pod's containers, from the host: no chance to hand over."""
    uid = kube.get("pod", pod, namespace=OPERATOR_NAMESPACE)["metadata"]["uid"]
    pids = local_nodes.leftovers([uid])["processes"]
    assert pids, f"no process found for {pod}"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


def test_training_goes_on_undisturbed_when_the_active_replica_dies(
    kube: Kube, local_nodes: LocalNodes, two_replicas: tuple[str, str], trainer_image: str,
    namespace: str,
) -> None:  # fmt: skip
    active, _ = two_replicas
    job = digits_job("ha", trainer_image)
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    trainer["args"] = [*DIGITS_ARGS, "--epochs", "12", "--min-step-seconds", "0.25"]
    job["spec"]["failurePolicy"] = {"hangDetection": HANG_DETECTION}
    kube.apply(job, namespace)
    status_when(kube, namespace, "ha", lambda s: step(s) >= 20, timeout=180, what="step 20")

    restarts = container_restarts(kube, active)
    kill_pod_processes(local_nodes, kube, active)
    wait_until(
        lambda: container_restarts(kube, active) > restarts, timeout=60, what=f"{active} restarted"
    )
    taken_over_at = step(job_status(kube, namespace, "ha"))
    status_when(
        kube, namespace, "ha", lambda s: step(s) >= taken_over_at + 20,
        timeout=120, what="progress mirrored again",
    )  # fmt: skip
    status = wait_finished(kube, namespace, "ha", timeout=300)
    assert status["phase"] == "Succeeded", status
    assert status.get("restartAttempt", 0) == 0 and status.get("restarts", 0) == 0, status
    assert "lastFailure" not in status and "hang" not in status, status
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "HangDetected" not in reasons.split() and "WorkerFailed" not in reasons.split()
