"""Two replicas of the operator (the chart's HA mode: `helm upgrade --set replicas=2`) while a
job trains on real nodes: the active one is SIGKILLed and the standby takes over. Training goes
on undisturbed; the standby rebuilds what the dead one held in memory (the job's step pace, the
workers it polls) from what it sees, so the gap in polling is no hang, and it carries on
mirroring progress."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

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

# Hang called when the step stands still 10 s: less than the takeover takes, so a standby that
# judged the pause in polling as a stalled step would call a hang.
HANG_DETECTION = {"minSeconds": 10, "stepTimeMultiple": 10}
PEERING_LIFETIME = 15  # a standby takes over this long after the active replica died
PAUSED = "Pausing operations in favour of"  # kopf's line in a replica that stands by
RESUMED = "Resuming operations after the pause"  # ... and once it takes over


def step(status: dict[str, object]) -> int:
    progress = status.get("progress") or {}
    assert isinstance(progress, dict)
    return int(progress.get("step") or 0)


def replica_logs(kube: Kube) -> dict[str, str]:
    """Each running operator pod's log, by pod name."""
    pods = kube.get("pods", namespace=OPERATOR_NAMESPACE)["items"]
    running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    running = [p for p in running if not _leaving(pods, p)]
    return {name: kube.run("logs", "-n", OPERATOR_NAMESPACE, name) for name in running}


def _leaving(pods: list[dict[str, Any]], name: str) -> bool:
    return any(
        p["metadata"]["name"] == name and p["metadata"].get("deletionTimestamp") for p in pods
    )


def active_and_standby(kube: Kube) -> tuple[str, str] | None:
    """(active, standby) once two replicas run and exactly one of them has paused."""
    logs = replica_logs(kube)
    paused = [name for name, log in logs.items() if PAUSED in log]
    if len(logs) != 2 or len(paused) != 1:
        return None
    [active] = [name for name in logs if name not in paused]
    return active, paused[0]


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
    active, standby = two_replicas
    job = digits_job("ha", trainer_image)
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    trainer["args"] = [*DIGITS_ARGS, "--epochs", "12", "--min-step-seconds", "0.25"]
    job["spec"]["failurePolicy"] = {"hangDetection": HANG_DETECTION}
    kube.apply(job, namespace)
    status_when(kube, namespace, "ha", lambda s: step(s) >= 20, timeout=180, what="step 20")
    kill_pod_processes(local_nodes, kube, active)
    wait_until(
        lambda: RESUMED in kube.run("logs", "-n", OPERATOR_NAMESPACE, standby),
        timeout=120,
        what="the standby taking over",
    )
    taken_over_at = step(job_status(kube, namespace, "ha"))
    status_when(
        kube, namespace, "ha", lambda s: step(s) >= taken_over_at + 20,
        timeout=120, what="the standby mirroring progress",
    )  # fmt: skip
    status = wait_finished(kube, namespace, "ha", timeout=300)
    assert status["phase"] == "Succeeded", status
    assert status.get("restartAttempt", 0) == 0 and status.get("restarts", 0) == 0, status
    assert "lastFailure" not in status and "hang" not in status, status
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "HangDetected" not in reasons.split() and "WorkerFailed" not in reasons.split()
