"""Two replicas of the operator (the chart's HA mode) while a job trains on local nodes: the
active one is SIGKILLed and the standby takes over. Training goes on undisturbed; the standby
rebuilds what the dead one held in memory (the job's step pace, the workers it polls) from what
it sees, so the gap in polling is no hang, and it carries on mirroring progress."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    job_status,
    status_when,
    wait_finished,
)
from tests.harness import LocalNodes, OperatorProcess
from tests.integration.test_failover import make_peering, peering_args
from tests.kube import Kube, wait_until

# Hang called when the step stands still 10 s: less than the takeover takes, so a standby that
# judged the pause in polling as a stalled step would call a hang.
HANG_DETECTION = {"minSeconds": 10, "stepTimeMultiple": 10}


def step(status: dict[str, object]) -> int:
    progress = status.get("progress") or {}
    assert isinstance(progress, dict)
    return int(progress.get("step") or 0)


def test_training_goes_on_undisturbed_when_the_active_replica_dies(
    kube: Kube, operator: OperatorProcess, local_nodes: LocalNodes, namespace: str, tmp_path: Path
) -> None:
    job = digits_job("ha")
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    trainer["args"] = [*DIGITS_ARGS, "--epochs", "12", "--min-step-seconds", "0.25"]
    job["spec"]["failurePolicy"] = {"hangDetection": HANG_DETECTION}
    make_peering(kube)
    operator.stop()
    active, standby = (OperatorProcess(kube.kubeconfig, tmp_path / f"{n}.log") for n in "ab")
    try:
        active.start(args=peering_args(200))
        wait_until(lambda: "Resuming operations" in active.log_path.read_text(), timeout=60)
        standby.start(args=peering_args(100))
        # Finding the active one's peering record, it starts paused (and says nothing of it).
        wait_until(lambda: "authentication has finished" in standby.log_path.read_text())
        kube.apply(job, namespace)
        status_when(kube, namespace, "ha", lambda s: step(s) >= 20, timeout=180, what="step 20")
        active.kill()
        wait_until(
            lambda: "Resuming operations" in standby.log_path.read_text(),
            timeout=120,
            what="the standby taking over",
        )
        taken_over_at = step(job_status(kube, namespace, "ha"))
        status_when(
            kube,
            namespace,
            "ha",
            lambda s: step(s) >= taken_over_at + 20,
            timeout=120,
            what="the standby mirroring progress",
        )
        status = wait_finished(kube, namespace, "ha", timeout=300)
    finally:
        for process in (active, standby):
            process.stop()
        operator.start()
    assert status["phase"] == "Succeeded", status
    assert status.get("restartAttempt", 0) == 0 and status.get("restarts", 0) == 0, status
    assert "lastFailure" not in status and "hang" not in status, status
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "HangDetected" not in reasons.split() and "WorkerFailed" not in reasons.split()
    # The standby, not the dead replica, saw the job to its end.
    assert f"{namespace}/ha AllWorkersSucceeded" in standby.log_path.read_text()
