"""Time to recover and goodput: which report ends an outage, and the arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ringleader.constants import Phase
from ringleader.goodput import (
    TrainingClock,
    accounting_end,
    advance,
    compute_goodput,
    is_after,
    start_clock,
    step_completed_at,
)
from ringleader.reports import ProgressReport, parse_progress
from ringleader.statusmodels import JobStatus

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z; the job starts here in every test
Obj = dict[str, Any]


def at(seconds: float) -> str:
    """A status time `seconds` after the start, rounded down to the second as status is."""
    return datetime.fromtimestamp(T0 + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(seconds: float, step: int = 120, state: str = "Training") -> ProgressReport:
    """The trainer's progress document, written `seconds` after the start."""
    parsed = parse_progress({"step": step, "updated_at": T0 + seconds, "state": state})
    assert parsed is not None
    return parsed


def group_report(
    seconds: float,
    first: tuple[int, float],
    previous: tuple[int, float] | None = None,
    pace: float = 0.05,
) -> ProgressReport:
    """A report of a process group whose first step was (step, seconds) and which found the
    job's progress document at (step, seconds) when it began."""
    doc = {
        "step": first[0] + 10,
        "updated_at": T0 + seconds,
        "state": "Training",
        "seconds_per_step": pace,
        "incarnation": {
            "first_step": first[0],
            "first_step_at": T0 + first[1],
            "previous_step": previous[0] if previous else None,
            "previous_step_at": T0 + previous[1] if previous else None,
        },
    }
    parsed = parse_progress(doc)
    assert parsed is not None and parsed.incarnation is not None
    return parsed


def status(
    failure: tuple[float, str] | None = None,
    progress_at: float | None = None,
    completion: float | None = None,
    pod: str = "digits-worker-1-a0",
) -> JobStatus:
    """A job's status: started at T0, with a failure (time, action) and mirrored progress."""
    out: Obj = {"startTime": at(0)}
    if failure is not None:
        out["lastFailure"] = {
            "class": "NodeLost",
            "pod": pod,
            "podUID": f"uid-{pod}",
            "action": failure[1],
            "time": at(failure[0]),
        }
    if progress_at is not None:
        out["progress"] = {"step": 120, "updatedAt": at(progress_at)}
    if completion is not None:
        out["completionTime"] = at(completion)
    return JobStatus.model_validate(out)


def seen(*steps: tuple[JobStatus, ProgressReport | None, float]) -> tuple[TrainingClock, list[Any]]:
    """The clock after (status, report, now) observations in order, and every recovery."""
    clock: TrainingClock | None = None
    recovered: list[Any] = []
    for job_status, job_report, now in steps:
        clock, ended = advance(clock, job_status, job_report, T0 + now)
        recovered += ended
    assert clock is not None
    return clock, recovered


def goodput_at(clock: TrainingClock, now: float) -> float | None:
    return compute_goodput(clock, T0 + now)


# Which report tells of a step, and when.


def test_a_report_written_after_a_step_tells_when_the_step_was_completed() -> None:
    assert step_completed_at(report(12.5)) == T0 + 12.5


@pytest.mark.parametrize("state", ["StoppedHere", "StoppedElsewhere", "Finished"])
def test_a_workers_last_words_as_it_stops_or_finishes_tell_of_no_new_step(state: str) -> None:
    assert step_completed_at(report(12.5, state=state)) is None


def test_a_report_without_a_step_or_a_time_tells_of_nothing() -> None:
    assert step_completed_at(None) is None
    assert step_completed_at(parse_progress({"step": 3})) is None
    assert step_completed_at(parse_progress({"updated_at": T0})) is None


def test_a_moment_in_the_same_second_as_a_status_time_may_precede_it() -> None:
    assert not is_after(T0 + 0.9, T0)
    assert is_after(T0 + 1.0, T0)


# Time to recover.

RUNNING = status(progress_at=5)
FAILED = status(failure=(30, "RestartWorker"), progress_at=29)


def test_the_first_step_after_a_failure_ends_its_recovery_even_below_the_old_step() -> None:
    # Failed at step 120; the group resumed from the checkpoint at step 100.
    _, recovered = seen(
        (RUNNING, report(5), 5), (FAILED, report(29), 31), (FAILED, report(42, 101), 43)
    )
    assert recovered == [("RestartWorker", 12.0)]


def test_a_resumed_step_equal_to_the_step_at_the_failure_still_ends_the_recovery() -> None:
    _, recovered = seen((RUNNING, report(5), 5), (FAILED, report(29), 31), (FAILED, report(40), 41))
    assert recovered == [("RestartWorker", 10.0)]


def test_the_report_already_there_before_the_failure_ends_nothing() -> None:
    _, recovered = seen((RUNNING, report(5), 5), (FAILED, report(29), 31), (FAILED, report(29), 36))
    assert recovered == []


def test_a_report_in_the_failures_own_second_ends_nothing() -> None:
    _, recovered = seen((RUNNING, report(5), 5), (FAILED, report(30.6), 31))
    assert recovered == []


def test_the_stopping_groups_last_report_after_the_failure_is_no_recovery() -> None:
    stopped = report(33, 121, state="StoppedHere")
    _, recovered = seen((RUNNING, report(5), 5), (FAILED, stopped, 34))
    assert recovered == []


def test_each_recovery_is_observed_once_however_often_its_step_is_seen() -> None:
    later = (FAILED, report(40, 101), 41)
    _, recovered = seen((RUNNING, report(5), 5), (FAILED, None, 31), later, later, later)
    assert recovered == [("RestartWorker", 10.0)]


def test_a_failure_during_a_recovery_is_observed_from_its_own_time_to_the_same_step() -> None:
    again = status(failure=(38, "RestartGang"), progress_at=29, pod="digits-worker-0-a0")
    _, recovered = seen(
        (RUNNING, report(5), 5), (FAILED, None, 31), (again, None, 39), (again, report(50), 51)
    )
    assert recovered == [("RestartWorker", 20.0), ("RestartGang", 12.0)]


def test_two_failures_in_one_second_are_both_observed() -> None:
    other = status(failure=(30, "RestartWorker"), progress_at=29, pod="digits-worker-0-a0")
    _, recovered = seen((RUNNING, None, 5), (FAILED, None, 31), (other, report(40), 41))
    assert [action for action, _ in recovered] == ["RestartWorker", "RestartWorker"]


def test_a_step_the_poller_hears_late_ends_the_outage_before_the_next_failure() -> None:
    # The first failure's recovery completed a step at 40; the poller hears of it only when
    # status already shows a second failure at 45.
    again = status(failure=(45, "RestartGang"), progress_at=29, pod="digits-worker-0-a0")
    clock, recovered = seen((RUNNING, None, 5), (FAILED, None, 31), (again, report(40), 46))
    assert recovered == [("RestartWorker", 10.0)]
    assert clock.outage is not None and clock.outage.since == T0 + 45


def test_a_failed_job_recovers_from_nothing() -> None:
    failed = status(failure=(30, "FailJob"), progress_at=29, completion=31)
    _, recovered = seen((RUNNING, report(5), 5), (failed, None, 32))
    assert recovered == []


# Operator restarts: the accounting starts again from what status says.


def test_a_recovery_status_already_shows_as_done_is_not_observed_again() -> None:
    done = status(failure=(30, "RestartWorker"), progress_at=40)
    _, recovered = seen((done, report(44), 45))
    assert recovered == []


def test_a_recovery_still_under_way_when_the_operator_restarts_is_observed() -> None:
    _, recovered = seen((FAILED, None, 35), (FAILED, report(40, 101), 41))
    assert recovered == [("RestartWorker", 10.0)]


def test_a_job_that_trained_before_the_operator_started_counts_from_then() -> None:
    clock = start_clock(RUNNING, T0 + 100)
    assert clock is not None and clock.counted_from == T0 + 100 and clock.outage is None
    assert goodput_at(clock, 150) == 1.0


def test_a_job_seen_before_its_first_step_counts_from_its_start() -> None:
    clock = start_clock(status(), T0 + 100)
    assert clock is not None and clock.counted_from == T0
    assert goodput_at(clock, 100) == 0.0


def test_a_job_not_started_has_no_clock() -> None:
    assert start_clock(JobStatus(phase=Phase.PENDING), T0) is None
    assert advance(None, JobStatus(phase=Phase.SUSPENDED), report(5), T0 + 5) == (None, [])


# Goodput.


def test_time_before_the_first_step_is_not_training() -> None:
    clock, _ = seen((status(), None, 0), (status(), report(10), 11))
    assert goodput_at(clock, 100) == pytest.approx(0.9)


def test_time_from_a_failure_to_the_next_step_is_not_training() -> None:
    clock, _ = seen((status(), report(10), 11), (FAILED, None, 31), (FAILED, report(40, 101), 41))
    assert goodput_at(clock, 100) == pytest.approx((100 - 10 - 10) / 100)


def test_a_recovery_under_way_counts_as_lost_until_now() -> None:
    clock, _ = seen((status(), report(10), 11), (FAILED, None, 31))
    assert goodput_at(clock, 50) == pytest.approx((50 - 10 - 20) / 50)


def test_overlapping_failures_lose_their_time_once() -> None:
    again = status(failure=(38, "RestartGang"), progress_at=29, pod="digits-worker-0-a0")
    clock, _ = seen(
        (status(), report(10), 11), (FAILED, None, 31), (again, None, 39), (again, report(50), 51)
    )
    assert goodput_at(clock, 100) == pytest.approx((100 - 10 - 20) / 100)


def test_a_finished_jobs_goodput_stays_as_it_ended() -> None:
    done = status(progress_at=90, completion=100)
    clock, _ = seen((status(), report(10), 11), (done, None, 101))
    end = accounting_end(done, T0 + 5000)
    assert end == T0 + 100
    assert compute_goodput(clock, end) == pytest.approx(0.9)


def test_a_resume_after_a_suspension_starts_the_accounting_again() -> None:
    clock, _ = seen((status(), report(10), 11))
    resumed = JobStatus.model_validate(
        {"startTime": at(500), "progress": {"step": 120, "updatedAt": at(10)}}
    )
    clock, _ = seen((status(), report(10), 11), (resumed, report(10), 501))
    assert clock.counted_from == T0 + 500
    assert goodput_at(clock, 600) == 0.0


def test_no_goodput_before_any_time_has_passed() -> None:
    clock = start_clock(status(), T0)
    assert clock is not None and goodput_at(clock, 0) is None


# Process groups: each report names its group's first step and the step before it.


def test_a_group_restarted_in_place_with_no_failure_recorded_loses_its_gap() -> None:
    first = group_report(20, (1, 10))
    # torchrun's agent restarted the processes: last step at 30 (step 300), a checkpoint at 280.
    # Its first pace figure counts its start-up too: the steps trained again went at the old one.
    second = group_report(45, (281, 40), previous=(300, 30), pace=2.0)
    clock, recovered = seen((status(), first, 20), (RUNNING, second, 45))
    # Lost: the start to the first step (10), the gap (10), 20 steps trained again (1).
    assert goodput_at(clock, 50) == pytest.approx((50 - 10 - 10 - 1) / 50)
    assert recovered == []


def test_a_recorded_failure_is_counted_from_the_last_step_to_the_new_groups_first() -> None:
    first = group_report(25, (1, 10))
    after = group_report(45, (120, 40), previous=(119, 28))
    clock, recovered = seen((status(), first, 25), (FAILED, None, 31), (FAILED, after, 45))
    # From the last step (28), not the failure's record (30), to the first step (40), not the
    # newest step the poll saw (45).
    assert goodput_at(clock, 50) == pytest.approx((50 - 10 - 12) / 50)
    assert recovered == [("RestartWorker", 10.0)]


def test_a_group_is_counted_once_however_often_it_is_seen() -> None:
    first = group_report(20, (1, 10))
    second = group_report(45, (101, 40), previous=(100, 30))
    clock, _ = seen((status(), first, 20), (RUNNING, second, 45), (RUNNING, second, 47))
    assert goodput_at(clock, 50) == pytest.approx((50 - 10 - 10) / 50)


def test_a_progress_document_from_before_the_start_dates_nothing() -> None:
    # An earlier job of the same name left its document on the volume (step 900).
    stale = group_report(20, (1, 10), previous=(900, -500))
    clock, _ = seen((status(), stale, 20))
    assert goodput_at(clock, 50) == pytest.approx((50 - 10) / 50)


def test_a_failure_recorded_after_the_group_that_followed_it_is_not_counted_again() -> None:
    first = group_report(20, (1, 10))
    second = group_report(45, (101, 40), previous=(100, 30))
    late = status(failure=(31, "RestartWorker"), progress_at=45)
    clock, _ = seen((status(), first, 20), (RUNNING, second, 45), (late, second, 47))
    assert clock.outage is None
    assert goodput_at(clock, 50) == pytest.approx((50 - 10 - 10) / 50)


def test_a_group_that_trained_before_the_operator_started_dates_nothing() -> None:
    trained = status(progress_at=95)
    before = group_report(96, (50, 60), previous=(49, 55))
    clock, _ = seen((trained, before, 100))
    assert goodput_at(clock, 150) == 1.0
