"""Status: what the pods say becomes phase, conditions and counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ringleader import constants as c
from ringleader import crdgen, status
from ringleader.constants import Phase
from ringleader.decisions import JobFailure
from tests.unit.operator.jobs import make_job, parse

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2026, 1, 2, 3, 9, 5, tzinfo=UTC)


def pod(phase: str = "Running", ready: bool = True, attempt: int = 0, **meta: Any) -> Any:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"labels": {"ringleader.dev/restart-attempt": str(attempt)}, **meta},
        "status": {"phase": phase, "conditions": conditions},
    }


def exited(*codes: int) -> Any:
    """A pod a kubelet has seen exit but not yet marked finished: Running, not Ready, each
    container terminated with its code."""
    finished = pod(ready=False)
    finished["spec"] = {"containers": [{"name": f"c{i}"} for i in range(len(codes))]}
    states = [{"state": {"terminated": {"exitCode": code}}} for code in codes]
    finished["status"]["containerStatuses"] = states
    return finished


def job_with(spec: dict[str, Any] | None = None, **status_fields: Any) -> Any:
    job = make_job(spec=spec)
    if status_fields:
        job["status"] = status_fields
    return parse(job)


def compute(*args: Any) -> dict[str, Any]:
    """compute_status as the API would hold it (every field, None included)."""
    out: dict[str, Any] = status.compute_status(*args).model_dump(by_alias=True, mode="json")
    return out


ELASTIC = {"replicas": 4, "elastic": {"minReplicas": 2, "maxReplicas": 4}}
DEADLINE = JobFailure("DeadlineExceeded", "ran longer than activeDeadlineSeconds (60s)")


@pytest.mark.parametrize(
    ("spec", "previous", "pods", "failure", "expected"),
    [
        ({}, None, [], None, "Pending/WaitingForWorkers"),
        ({}, None, [pod("Pending", False)], None, "Starting/WorkersStarting"),
        ({}, None, [pod(), pod("Pending", False)], None, "Starting/WorkersStarting"),
        ({}, None, [pod(), pod(ready=False)], None, "Starting/WorkersStarting"),
        ({}, None, [pod(), pod()], None, "Running/AllWorkersRunning"),
        (ELASTIC, None, [pod(), pod()], None, "Running/RunningBelowDesiredReplicas"),
        (ELASTIC, None, [pod(), pod("Pending")], None, "Starting/WorkersStarting"),
        ({}, None, [pod(), pod("Failed")], None, "Restarting/RestartInProgress"),
        ({}, None, [pod(attempt=1), pod()], None, "Restarting/RestartInProgress"),
        ({}, "Restarting", [pod(), pod("Pending")], None, "Restarting/RestartInProgress"),
        ({}, "Restarting", [pod(), pod()], None, "Running/AllWorkersRunning"),
        ({}, None, [pod("Succeeded"), pod("Succeeded")], None, "Succeeded/AllWorkersSucceeded"),
        ({}, None, [pod("Succeeded"), pod()], None, "Running/AllWorkersRunning"),
        # Containers exited 0 before the kubelet wrote the phase: finishing, not starting.
        ({}, None, [exited(0), exited(0, 0)], None, "Succeeded/AllWorkersSucceeded"),
        ({}, None, [exited(0), pod()], None, "Running/AllWorkersRunning"),
        # One container exited 1: not a clean exit; the Failed phase that follows is a failure.
        ({}, None, [exited(0), exited(0, 1)], None, "Starting/WorkersStarting"),
        ({}, None, [pod(), pod()], DEADLINE, "Failed/DeadlineExceeded"),
        ({"runPolicy": {"suspend": True}}, "Running", [pod()], None, "Suspended/JobSuspended"),
        ({"runPolicy": {"suspend": True}}, None, [], DEADLINE, "Failed/DeadlineExceeded"),
        ({}, "Succeeded", [], None, "Succeeded/JobFinished"),
        ({}, "Failed", [pod()], None, "Failed/JobFinished"),
    ],
)
def test_phase_follows_the_table(
    spec: dict[str, Any],
    previous: str | None,
    pods: list[Any],
    failure: JobFailure | None,
    expected: str,
) -> None:
    job = job_with(spec, phase=previous) if previous else job_with(spec)
    decision = status.decide_phase(status.observe(job, pods, failure))
    assert f"{decision.phase}/{decision.reason}" == expected


def test_terminating_pods_of_the_current_attempt_are_not_counted() -> None:
    counts = status.count_worker_pods([pod(deletionTimestamp="t"), pod()], attempt=0)
    assert (counts.running, counts.ready, counts.stale) == (1, 1, 0)


def test_a_worker_being_deleted_is_named_in_the_condition() -> None:
    going = pod(name="digits-worker-1-a0", deletionTimestamp="t")
    out = compute(job_with(phase="Running"), [pod(), going], NOW)
    assert out["phase"] == "Starting"
    # Starting has no condition of its own: every condition carries the decision's message.
    assert out["conditions"][0]["message"] == "1/2 ready; digits-worker-1-a0 is being deleted"
    old = pod(name="digits-worker-1-a0", deletionTimestamp="t", attempt=1)
    later = compute(job_with(phase="Running", restartAttempt=2), [old], NOW)
    assert "being deleted" not in str(later["conditions"])  # an older attempt's pod


def test_running_status_reports_counters_world_size_and_the_workers_column() -> None:
    job = parse(make_job(spec={"replicas": 3, "nprocPerNode": 4}))
    out = compute(job, [pod(), pod(), pod("Pending", False)], NOW)
    assert out["phase"] == "Starting"
    assert (out["replicas"], out["readyReplicas"], out["worldSize"]) == (3, 2, 0)
    assert out["workers"] == "2/3"
    assert out["selector"] == "ringleader.dev/job-name=digits,ringleader.dev/role=worker"
    running = compute(job, [pod(), pod(), pod()], NOW)
    assert (running["phase"], running["worldSize"], running["workers"]) == ("Running", 12, "3/3")


def test_exactly_one_condition_is_true_and_all_carry_the_generation() -> None:
    out = compute(job_with(), [pod(), pod()], NOW)
    conditions = {x["type"]: x for x in out["conditions"]}
    assert set(conditions) == {
        "Running",
        "Resizing",
        "Restarting",
        "Queued",
        "Suspended",
        "Succeeded",
        "Failed",
    }
    assert [t for t, x in conditions.items() if x["status"] == "True"] == ["Running"]
    assert {x["observedGeneration"] for x in conditions.values()} == {3}
    assert conditions["Running"]["reason"] == "AllWorkersRunning"
    assert conditions["Running"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_an_unchanged_status_yields_an_identical_dict_so_nothing_is_written() -> None:
    first = compute(job_with(), [pod(), pod()], NOW)
    job = parse({**make_job(), "status": first})
    assert compute(job, [pod(), pod()], LATER) == first


def test_transition_time_moves_only_for_conditions_whose_status_flipped() -> None:
    first = compute(job_with(), [pod(), pod()], NOW)
    job = parse({**make_job(), "status": first})
    after = compute(job, [pod(), pod("Failed")], LATER)
    times = {x["type"]: x["lastTransitionTime"] for x in after["conditions"]}
    assert times["Running"] == times["Restarting"] == "2026-01-02T03:09:05Z"
    assert times["Failed"] == "2026-01-02T03:04:05Z"


def test_start_time_is_kept_once_set_and_cleared_while_suspended() -> None:
    started = compute(job_with(), [pod("Pending", False)], NOW)
    assert started["startTime"] == "2026-01-02T03:04:05Z"
    job = parse({**make_job(), "status": started})
    assert compute(job, [pod(), pod()], LATER)["startTime"] == started["startTime"]
    suspended = parse({**make_job(spec={"runPolicy": {"suspend": True}}), "status": started})
    assert compute(suspended, [], LATER)["startTime"] is None


@pytest.mark.parametrize(
    ("pods", "failure", "completed"),
    [
        ([pod("Succeeded"), pod("Succeeded")], None, True),
        ([pod(), pod()], DEADLINE, True),
        ([pod(), pod()], None, False),
    ],
)
def test_completion_time_is_set_when_the_job_finishes(
    pods: list[Any], failure: JobFailure | None, completed: bool
) -> None:
    out = compute(job_with(), pods, NOW, failure)
    assert (out["completionTime"] is not None) == completed


def test_failure_message_reaches_the_failed_condition() -> None:
    out = compute(job_with(), [pod(), pod()], NOW, DEADLINE)
    failed = next(x for x in out["conditions"] if x["type"] == "Failed")
    assert (failed["status"], failed["reason"], failed["message"]) == (
        "True",
        "DeadlineExceeded",
        DEADLINE.message,
    )


def test_the_crd_accepts_exactly_the_phases_the_operator_knows() -> None:
    crd = crdgen.build_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["status"]["properties"]["phase"]["enum"] == [p.value for p in Phase]
    assert set(c.CONDITION_TYPES) <= set(Phase)


def test_a_finished_job_keeps_the_reason_and_message_it_finished_with() -> None:
    job = make_job()
    failed_at = "2026-01-01T00:00:00Z"
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "MaxRestartsExceeded",
        "message": "worker w-0 failed and all 0 restarts are used up",
        "lastTransitionTime": failed_at,
        "observedGeneration": 3,
    }
    job["status"] = {"phase": "Failed", "conditions": [condition], "completionTime": failed_at}
    computed = compute(parse(job), [], NOW)
    assert computed["phase"] == "Failed"
    assert computed["conditions"] == [condition]


def trained_by(processes: int) -> dict[str, Any]:
    return {"progress": {"step": 40, "worldSize": processes}}


def test_an_elastic_group_re_forming_at_another_size_is_resizing() -> None:
    job = job_with(ELASTIC, **trained_by(2))
    out = compute(job, [pod(), pod(), pod()], NOW)
    assert out["phase"] == "Resizing"
    resizing = {x["type"]: x for x in out["conditions"]}["Resizing"]
    assert resizing["reason"] == "GroupResizing"
    assert resizing["message"] == (
        "re-forming the group: 3/4 workers ready, the last step was trained by 2 processes"
    )
    assert out["worldSize"] == 2  # what trains now, not what is ready


def test_once_the_trainer_reports_the_new_size_the_group_is_running() -> None:
    job = job_with(ELASTIC, **trained_by(3))
    out = compute(job, [pod(), pod(), pod(), pod("Pending", ready=False)], NOW)
    assert (out["phase"], out["worldSize"], out["workers"]) == ("Running", 3, "3/4")


def test_a_fixed_size_job_is_never_resizing() -> None:
    out = compute(job_with(None, **trained_by(1)), [pod(), pod()], NOW)
    assert out["phase"] == "Running"


def test_an_elastic_restart_ends_once_its_minimum_is_ready() -> None:
    job = job_with(ELASTIC, phase="Restarting")
    out = compute(job, [pod(), pod(), pod("Pending", ready=False)], NOW)
    assert out["phase"] == "Running"
