"""Failure classes and the failure policy's actions on a real control plane with kwok nodes."""

from __future__ import annotations

from typing import Any

import pytest

from ringleader.kube import FAULT_EXIT_CODE
from tests.harness import OperatorProcess
from tests.integration.test_operator import (
    FAIL,
    job_status,
    live_worker_slots,
    make_job,
    wait_for_phase,
    worker_pods,
)
from tests.kube import Kube, live_worker, slot_of, wait_until, worker_name


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
    failing = worker_name(kube, namespace, "train", 1)
    fail_worker(kube, namespace, failing, 137, "OOMKilled")
    wait_until(
        lambda: live_worker_slots(kube, namespace) == ["train-worker-0-a1", "train-worker-1-a1"],
        what="the gang recreated as attempt 1",
    )
    status = wait_for_phase(kube, namespace, "Running")
    last = status["lastFailure"]
    assert (last["class"], last["pod"], last["exitCode"]) == ("OutOfMemory", failing, 137)
    assert (last["reason"], last["action"]) == ("OOMKilled", "RestartGang")
    assert status["restartsByClass"] == {"OutOfMemory": 1}
    assert (status["restartAttempt"], status["restarts"]) == (1, 1)
    assert event_messages(kube, namespace) == [
        f"worker {failing} failed (OutOfMemory, exit 137): restarting the gang (restart 1 of 10)"
    ]


def test_a_fail_job_rule_for_user_errors_ends_the_job_promptly_and_says_why(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    policy = {"maxRestarts": 10, "rules": [{"classes": ["UserError"], "action": "FailJob"}]}
    kube.apply(make_job(failurePolicy=policy), namespace)
    wait_for_phase(kube, namespace, "Running")
    failing = worker_name(kube, namespace, "train", 0)
    fail_worker(kube, namespace, failing, 1, "Error")
    status = wait_for_phase(kube, namespace, "Failed", timeout=20)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "FailedByPolicy"
    assert failed["message"] == (
        f"worker {failing} failed (UserError, exit 1): "
        "the failure policy fails the job on UserError"
    )
    assert status["lastFailure"]["class"] == "UserError"
    assert status.get("restarts", 0) == 0 and status["restartAttempt"] == 0
    wait_until(
        lambda: [p["metadata"]["name"] for p in worker_pods(kube, namespace)] == [failing],
        what="the other worker stopped; the failed one kept for its logs",
    )


def test_by_default_only_the_failed_pod_is_replaced(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    before = {slot_of(p): p["metadata"] for p in worker_pods(kube, namespace)}
    failing = before["train-worker-1-a0"]
    fail_worker(kube, namespace, failing["name"], 137, "OOMKilled")

    def replaced() -> list[dict[str, Any]] | None:
        new = live_worker(kube, namespace, "train", 1, other_than=failing["uid"])
        running = job_status(kube, namespace).get("phase") == "Running"
        return worker_pods(kube, namespace) if new and running else None

    survivor, replacement = wait_until(replaced, what="worker 1 replaced, the job Running again")
    assert [slot_of(survivor), slot_of(replacement)] == ["train-worker-0-a0", "train-worker-1-a0"]
    assert survivor["metadata"]["uid"] == before["train-worker-0-a0"]["uid"]  # it stayed
    assert replacement["metadata"]["name"] != failing["name"]  # a name of its own
    status = job_status(kube, namespace)
    assert (status["restartAttempt"], status["restarts"]) == (0, 1)
    assert status["restartsByClass"] == {"OutOfMemory": 1}
    assert status["lastFailure"]["action"] == "RestartWorker"
    assert event_messages(kube, namespace) == [
        f"worker {failing['name']} failed (OutOfMemory, exit 137): "
        "replacing that worker (restart 1 of 10)"
    ]


@pytest.mark.parametrize(
    ("rules", "workers_after"),
    [
        ([], ["train-worker-0-a0", "train-worker-1-a0"]),
        ([{"action": "RestartGang"}], ["train-worker-0-a1", "train-worker-1-a1"]),
    ],
    ids=["in-place", "gang"],
)
def test_an_operator_killed_mid_recovery_finishes_it_once_after_a_restart(
    kube: Kube,
    operator: OperatorProcess,
    namespace: str,
    rules: list[dict[str, str]],
    workers_after: list[str],
) -> None:
    kube.apply(make_job(failurePolicy={"rules": rules}), namespace)
    wait_for_phase(kube, namespace, "Running")
    failing = live_worker(kube, namespace, "train", 1)
    assert failing is not None
    failed_uid = failing["metadata"]["uid"]
    operator.stop()
    try:
        fail_worker(kube, namespace, failing["metadata"]["name"], 137, "OOMKilled")
        wait_until(
            lambda: any(p["status"].get("phase") == "Failed" for p in worker_pods(kube, namespace)),
            what="the worker failed while no operator runs",
        )
        for writes in (1, 2, 3):  # die after the status, then after the event, then later
            operator.start(exit_after_writes=writes)
            assert operator.wait_exit(timeout=30) == FAULT_EXIT_CODE, operator.log_tail()
    finally:
        operator.start()

    def recovered() -> bool:
        pods = worker_pods(kube, namespace)
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        fresh = all(p["metadata"]["uid"] != failed_uid for p in pods)
        slots = sorted(slot_of(p) for p in running)
        return fresh and slots == workers_after and len(pods) == 2

    wait_until(recovered, what=f"the job recovered to {workers_after}")
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restarts"], status["restartsByClass"]) == (1, {"OutOfMemory": 1})
    # Never announced twice. (The first operator died between its status write and the
    # event: the status is the durable record; that one event is lost.)
    assert len(event_messages(kube, namespace)) <= 1
