"""Workers that do not start: the reason in status, and spec.scheduling.startupTimeoutSeconds."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ringleader import builders, startup
from ringleader.apitime import format_time
from ringleader.reconcile import plan_reconcile
from tests.unit.operator.jobs import make_job, parse

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
Obj = dict[str, Any]
NO_GPUS = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."


def created(pod: Obj, seconds_ago: float) -> Obj:
    pod = copy.deepcopy(pod)
    pod["metadata"]["creationTimestamp"] = format_time(NOW - timedelta(seconds=seconds_ago))
    return pod


def unschedulable(pod: Obj, seconds_ago: float = 100) -> Obj:
    pod = created(pod, seconds_ago)
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    pod["status"] = {"phase": "Pending", "conditions": [{**condition, "message": NO_GPUS}]}
    return pod


def pulling(pod: Obj, reason: str, seconds_ago: float = 100) -> Obj:
    pod = created(pod, seconds_ago)
    waiting = {"reason": reason, "message": 'Back-off pulling image "trainer:typo"'}
    pod["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "trainer", "state": {"waiting": waiting}}],
    }
    return pod


def running(pod: Obj, seconds_ago: float = 100) -> Obj:
    pod = created(pod, seconds_ago)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return pod


def job_with(timeout: int | None = None, **spec: Any) -> Obj:
    if timeout is not None:
        spec["scheduling"] = {"startupTimeoutSeconds": timeout}
    return make_job(spec)


def workers(job: Obj) -> list[Obj]:
    """The job's worker pods of attempt 0, each named with the token x7k2p."""
    model = parse(job)
    return [builders.build_worker_pod(model, i, 0, "x7k2p") for i in range(model.spec.replicas)]


def test_a_waiting_pod_is_explained_by_its_scheduler_or_its_kubelet() -> None:
    pod = workers(make_job())[0]
    assert startup.explain_waiting(unschedulable(pod)) == f"Unschedulable: {NO_GPUS}"
    assert startup.explain_waiting(pulling(pod, "ImagePullBackOff")) == (
        'ImagePullBackOff: Back-off pulling image "trainer:typo"'
    )
    assert startup.explain_waiting(pulling(pod, "ContainerCreating")) == ""  # just starting
    long = unschedulable(pod)
    long["status"]["conditions"][0]["message"] = "x" * 500
    assert len(startup.explain_waiting(long)) == startup.MESSAGE_LIMIT


def test_a_fixed_size_job_fails_once_a_worker_waited_longer_than_its_startup_timeout() -> None:
    job = job_with(timeout=60)
    first, second = workers(job)
    why, wait = startup.startup_timeout(
        parse(job), [running(first), unschedulable(second, 61)], 0, NOW
    )
    assert wait is None and why == (
        "digits-worker-1-a0-x7k2p was not running 61s after it was created "
        f"(Unschedulable: {NO_GPUS})"
        "; 1 of the 2 workers the job needs run (spec.scheduling.startupTimeoutSeconds: 60)"
    )


@pytest.mark.parametrize(
    ("timeout", "spec", "expected"),
    [
        (60, {}, (None, 20.0)),  # not yet: due in 20 s
        (None, {}, (None, None)),  # no timeout: waits for ever
        (60, {"elastic": {"minReplicas": 1, "maxReplicas": 2}}, (None, None)),  # trains on 1
        (60, {"runPolicy": {"suspend": True}}, (None, None)),
    ],
    ids=["not-yet", "unset", "elastic-above-minimum", "suspended"],
)
def test_no_startup_failure_before_it_is_due_or_where_the_job_does_not_wait(
    timeout: int | None, spec: Obj, expected: tuple[str | None, float | None]
) -> None:
    job = job_with(timeout=timeout, **spec)
    first, second = workers(job)
    pods = [running(first), unschedulable(second, 40)]
    assert startup.startup_timeout(parse(job), pods, 0, NOW) == expected


def test_the_timeout_counts_from_the_waiting_pods_creation_not_the_jobs() -> None:
    job = job_with(timeout=60)
    first, second = workers(job)
    pods = [running(first, 3600), unschedulable(second, 10)]  # a replacement, 10 s old
    assert startup.startup_timeout(parse(job), pods, 0, NOW) == (None, 50.0)


def test_a_reconcile_past_the_timeout_fails_the_job_and_removes_its_pods() -> None:
    job = job_with(timeout=60)
    job["status"] = {"phase": "Starting", "restartAttempt": 0}
    first, second = workers(job)
    plan = plan_reconcile(job, [running(first), pulling(second, "ImagePullBackOff", 90)], NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Failed"
    assert plan.status_patch["conditions"][0]["reason"] == "StartupTimeout"
    assert "ImagePullBackOff" in plan.status_patch["conditions"][0]["message"]
    assert plan.delete_pods == ["digits-worker-0-a0-x7k2p", "digits-worker-1-a0-x7k2p"]


def test_a_reconcile_before_the_timeout_asks_to_be_woken_when_it_is_due() -> None:
    job = job_with(timeout=60)
    job["status"] = {"phase": "Starting", "restartAttempt": 0}
    first, second = workers(job)
    plan = plan_reconcile(job, [running(first), unschedulable(second, 45)], NOW)
    assert plan.requeue_after == 16.0  # 15 s left, and a second's margin


def test_the_phase_message_says_why_a_worker_waits() -> None:
    job = make_job()
    first, second = workers(job)
    plan = plan_reconcile(job, [running(first), unschedulable(second)], NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Starting"
    assert plan.status_patch["conditions"][0]["message"] == (
        f"1/2 ready; digits-worker-1-a0-x7k2p waits: Unschedulable: {NO_GPUS}"
    )
