"""Progress mirroring: which worker is asked, and what reaches status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ringleader import progress, status
from ringleader.progress import apply_report, pick_reporter, plan_progress_patch, read_final_report
from ringleader.reports import ProgressReport, parse_progress
from ringleader.statusmodels import JobStatus, ProgressReporting, dump_status
from tests.unit.operator.jobs import make_job, parse

CHECKPOINT = {"step": 100, "path": "/checkpoints/step-00000100", "time": 1_799_999_990.0}
REPORT: dict[str, Any] = {
    "step": 120,
    "epoch": 2,
    "loss": 0.123456789,
    "samples_per_second": 4321.06,
    "updated_at": 1_800_000_000.5,
    "checkpoint": CHECKPOINT,
}


def mirrored(report: dict[str, Any]) -> JobStatus:
    """A status that already mirrors this report."""
    return apply_report(JobStatus(), parse_progress(report))


def of(status: dict[str, Any]) -> JobStatus:
    """A status as the models read it."""
    return JobStatus.model_validate(status)


def worker(index: int, attempt: int, phase: str = "Running", ip: str = "10.0.0.9") -> Any:
    labels = {
        "ringleader.dev/role": "worker",
        "ringleader.dev/replica-index": str(index),
        "ringleader.dev/restart-attempt": str(attempt),
    }
    status = {"phase": phase, "podIP": ip} if ip else {"phase": phase}
    meta = {"name": f"w-{index}", "uid": f"uid-{index}", "labels": labels}
    return {"kind": "Pod", "metadata": meta, "status": status}


def test_the_lowest_running_worker_of_the_current_attempt_reports() -> None:
    pods = [worker(1, 2), worker(0, 1), worker(0, 2, phase="Pending"), worker(2, 2)]
    chosen = pick_reporter(pods, attempt=2)
    assert chosen is not None and chosen["metadata"]["name"] == "w-1"


def test_a_worker_that_did_not_answer_lately_is_passed_over_for_the_next() -> None:
    pods = [worker(0, 0), worker(1, 0), worker(2, 0)]
    chosen = pick_reporter(pods, 0, unreachable={"uid-0"})
    assert chosen is not None and chosen["metadata"]["name"] == "w-1"
    assert pick_reporter(pods, 0, unreachable={"uid-0", "uid-1", "uid-2"}) is None


def test_no_worker_reports_before_one_runs_with_an_address() -> None:
    assert pick_reporter([worker(0, 0, ip=""), worker(1, 0, phase="Pending")], 0) is None


def test_a_report_becomes_progress_and_checkpoint_in_kubernetes_shapes() -> None:
    status = dump_status(mirrored(REPORT))
    assert status["progress"] == {
        "step": 120,
        "epoch": 2,
        "loss": 0.123457,
        "samplesPerSecond": 4321.1,
        "updatedAt": "2027-01-15T08:00:00Z",
    }
    assert status["checkpoint"] == {
        "step": 100,
        "path": "/checkpoints/step-00000100",
        "time": "2027-01-15T07:59:50Z",
    }


def test_a_report_already_in_status_writes_nothing() -> None:
    status = mirrored(REPORT)
    assert plan_progress_patch(status, parse_progress(REPORT)) is None


def test_a_new_step_with_the_same_checkpoint_patches_progress_only() -> None:
    status = mirrored(REPORT)
    patch = plan_progress_patch(status, parse_progress({**REPORT, "step": 121}))
    assert patch is not None and set(patch) == {"progress"}


def test_no_report_or_one_without_a_step_writes_nothing() -> None:
    assert plan_progress_patch(JobStatus(), None) is None
    assert plan_progress_patch(JobStatus(), parse_progress({"state": "starting"})) is None


def finished_worker(index: int, attempt: int, message: str) -> Any:
    pod = worker(index, attempt, phase="Succeeded")
    terminated = {"exitCode": 0, "reason": "Completed", "message": message}
    pod["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return pod


def test_the_final_report_comes_from_the_lowest_finished_worker_of_the_attempt() -> None:
    pods = [
        finished_worker(1, 0, '{"step": 344}'),
        finished_worker(0, 0, '{"step": 345}'),
        finished_worker(0, 1, "not json: a user's own message"),
    ]
    assert read_final_report(pods, attempt=0) == ProgressReport(step=345)
    assert read_final_report(pods, attempt=1) is None


def test_a_final_report_moves_status_to_the_last_step() -> None:
    status = mirrored(REPORT)
    final = {**REPORT, "step": 345, "checkpoint": {**CHECKPOINT, "step": 345}}
    report = read_final_report([finished_worker(0, 0, json.dumps(final))], attempt=0)
    patch = plan_progress_patch(status, report)
    assert patch is not None
    assert (patch["progress"]["step"], patch["checkpoint"]["step"]) == (345, 345)


def test_a_report_at_another_group_size_is_a_resize() -> None:
    status = of({"progress": {"step": 50, "worldSize": 4, "updatedAt": "2026-05-06T07:08:00Z"}})
    smaller, same = ProgressReport(51, world_size=2), ProgressReport(51, world_size=4)
    assert progress.detect_resize(status, smaller) == (4, 2)
    assert progress.detect_resize(status, same) is None
    first = ProgressReport(1, world_size=2)
    assert progress.detect_resize(JobStatus(), first) is None  # first report
    assert progress.detect_resize(status, None) is None


def test_the_resize_took_from_the_last_report_at_the_old_size_to_the_first_at_the_new() -> None:
    status = of({"progress": {"worldSize": 4, "updatedAt": "2026-05-06T07:08:00Z"}})
    then = datetime(2026, 5, 6, 7, 8, 0, tzinfo=UTC).timestamp()
    assert progress.resize_seconds(status, ProgressReport(60, updated_at=then + 6.5)) == 6.5
    assert progress.resize_seconds(JobStatus(), ProgressReport(60, updated_at=then)) is None


LOST = {"pod": "train-worker-3-a0", "class": "Preempted", "time": "2026-11-25T10:00:05Z"}


@pytest.mark.parametrize(
    ("replicas", "last_failure", "old", "new", "why"),
    [
        (4, LOST, 4, 3, "after train-worker-3-a0 was lost (Preempted)"),
        (4, None, 3, 4, "workers joined (scaled up, or capacity came back)"),
        (3, None, 4, 3, "workers were removed (scaled down)"),
        # Only a failure since the last report at the old size explains the shrink.
        (3, {**LOST, "time": "2026-11-25T09:00:00Z"}, 4, 3, "workers were removed (scaled down)"),
        (4, None, 4, 2, "workers stopped answering without a word (a lost node?)"),
    ],
)
def test_a_resize_says_from_to_and_why(
    replicas: int, last_failure: dict[str, str] | None, old: int, new: int, why: str
) -> None:
    job = make_job({"replicas": replicas, "elastic": {"minReplicas": 1, "maxReplicas": 4}})
    job["status"] = {"readyReplicas": 3, "progress": {"updatedAt": "2026-11-25T10:00:01Z"}}
    if last_failure:
        job["status"]["lastFailure"] = last_failure
    assert progress.describe_resize(parse(job), old, new) == (
        f"the training group re-formed from {old} to {new} processes: {why}; "
        f"3/{replicas} workers ready"
    )


NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
SILENT = ProgressReporting(reported=False, message="none", since=NOW)
REPORTING = ProgressReporting(reported=True, message="yes", since=NOW)


@pytest.mark.parametrize(
    ("current", "answered", "report", "waited", "expected"),
    [
        (None, False, None, 59.0, None),  # too soon to say
        (None, False, None, 61.0, False),  # nobody answered a minute after they started
        (None, True, None, 600.0, None),  # a launcher answered: reports will come
        (None, False, None, None, None),  # no worker runs: nothing to judge
        (None, True, ProgressReport(3), 1.0, True),
        (SILENT, True, ProgressReport(3), 900.0, True),  # a script that reports after all
        (SILENT, False, None, 900.0, None),  # said once
        (REPORTING, False, None, 900.0, None),  # a pod restarting: still a reporting job
        (REPORTING, True, ProgressReport(9), 900.0, None),
    ],
)
def test_whether_the_workers_report_is_said_once_it_is_known(
    current: ProgressReporting | None,
    answered: bool,
    report: ProgressReport | None,
    waited: float | None,
    expected: bool | None,
) -> None:
    judged = progress.judge_reporting(current, answered, report, waited, NOW)
    assert (judged.reported if judged else None) == expected


def test_a_job_without_reports_says_so_in_a_condition() -> None:
    job = make_job()
    job["status"] = {"reporting": SILENT.model_dump(by_alias=True, mode="json")}
    new = status.compute_status(parse(job), [], NOW)
    condition = {c.type: c for c in new.conditions or []}["ProgressReported"]
    assert (condition.status, condition.reason, condition.message) == (
        "False",
        "NotReported",
        "none",
    )
    assert new.phase == "Pending"  # and nothing else changes
