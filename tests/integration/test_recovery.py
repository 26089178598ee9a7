"""Failure classes and the failure policy's actions on a real control plane with kwok nodes."""

from __future__ import annotations

from tests.harness import OperatorProcess
from tests.integration.test_operator import (
    FAIL,
    job_status,
    live_worker_names,
    make_job,
    wait_for_phase,
    worker_pods,
)
from tests.kube import Kube, wait_until


def fail_worker(kube: Kube, namespace: str, pod: str, exit_code: int, reason: str) -> None:
    """Make kwok fail the running pod with this exit code and container reason."""
    notes = [f"{FAIL}/exit-code={exit_code}", f"{FAIL}/reason={reason}"]
    kube.run("annotate", "pod", pod, "-n", namespace, *notes)
    kube.run("label", "pod", pod, "-n", namespace, f"{FAIL}=true")


def event_messages(kube: Kube, namespace: str) -> list[str]:
    events = kube.get("events", namespace=namespace)["items"]
    return [str(e.get("message")) for e in events if e.get("reason") == "WorkerFailed"]


def test_an_oom_killed_worker_under_a_gang_rule_is_classified_and_restarts_the_gang(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    policy = {"rules": [{"classes": ["OutOfMemory"], "action": "RestartGang"}]}
    kube.apply(make_job(failurePolicy=policy), namespace)
    wait_for_phase(kube, namespace, "Running")
    fail_worker(kube, namespace, "train-worker-1-a0", 137, "OOMKilled")
    wait_until(
        lambda: live_worker_names(kube, namespace) == ["train-worker-0-a1", "train-worker-1-a1"],
        what="the gang recreated as attempt 1",
    )
    status = wait_for_phase(kube, namespace, "Running")
    last = status["lastFailure"]
    assert (last["class"], last["pod"], last["exitCode"]) == (
        "OutOfMemory",
        "train-worker-1-a0",
        137,
    )
    assert (last["reason"], last["action"]) == ("OOMKilled", "RestartGang")
    assert status["restartsByClass"] == {"OutOfMemory": 1}
    assert (status["restartAttempt"], status["restarts"]) == (1, 1)
    assert event_messages(kube, namespace) == [
        "worker train-worker-1-a0 failed (OutOfMemory, exit 137): "
        "restarting the gang (restart 1 of 10)"
    ]


def test_a_fail_job_rule_for_user_errors_ends_the_job_promptly_and_says_why(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    policy = {"maxRestarts": 10, "rules": [{"classes": ["UserError"], "action": "FailJob"}]}
    kube.apply(make_job(failurePolicy=policy), namespace)
    wait_for_phase(kube, namespace, "Running")
    fail_worker(kube, namespace, "train-worker-0-a0", 1, "Error")
    status = wait_for_phase(kube, namespace, "Failed", timeout=20)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "FailedByPolicy"
    assert failed["message"] == (
        "worker train-worker-0-a0 failed (UserError, exit 1): "
        "the failure policy fails the job on UserError"
    )
    assert status["lastFailure"]["class"] == "UserError"
    assert status.get("restarts", 0) == 0 and status["restartAttempt"] == 0
    wait_until(
        lambda: (
            [p["metadata"]["name"] for p in worker_pods(kube, namespace)] == ["train-worker-0-a0"]
        ),
        what="the other worker stopped; the failed one kept for its logs",
    )


def test_by_default_only_the_failed_pod_is_replaced(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in worker_pods(kube, namespace)}
    fail_worker(kube, namespace, "train-worker-1-a0", 137, "OOMKilled")

    def replaced() -> dict[str, str] | None:
        pods = worker_pods(kube, namespace)
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
        new = uids.get("train-worker-1-a0") not in (None, before["train-worker-1-a0"])
        return uids if new and job_status(kube, namespace).get("phase") == "Running" else None

    after = wait_until(replaced, what="train-worker-1-a0 replaced and the job Running again")
    assert sorted(after) == ["train-worker-0-a0", "train-worker-1-a0"]
    assert after["train-worker-0-a0"] == before["train-worker-0-a0"]  # the survivor stayed
    status = job_status(kube, namespace)
    assert (status["restartAttempt"], status["restarts"]) == (0, 1)
    assert status["restartsByClass"] == {"OutOfMemory": 1}
    assert status["lastFailure"]["action"] == "RestartWorker"
    assert event_messages(kube, namespace) == [
        "worker train-worker-1-a0 failed (OutOfMemory, exit 137): "
        "replacing that worker (restart 1 of 10)"
    ]
