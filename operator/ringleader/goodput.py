"""Time to recover and goodput, from job status and the trainer's progress reports (pure).

A job is not training from its start until its first completed step, nor from a failure until the
first step completed after it: those stretches are outages. The progress poller shows `advance`
each job's status and newest report; an outage that ends yields, for every restart in it, the
seconds from that failure to the step (ringleader_recovery_seconds), and `compute_goodput` gives
the share of wall time outside outages (ringleader_job_goodput_ratio).

The trainer's report names its process's first step and the job's newest step before that
process began (`incarnation`). A process group seen for the first time so dates the outage it
ends: from the last step of the group before it (not from the failure's record, which comes
later) to its own first step (not the newest step the poll happened to see), and adds the time
of the steps it trains again after restoring a checkpoint. A group that began without any
failure recorded (a process torchrun's agent restarted in place, a group that re-formed) is an
outage of its own. Without that report, the failure's time and the newest step bound it.

Times are wall-clock seconds since the epoch: status times are the operator's clock rounded down
to the second, a report's `updated_at` is the trainer's clock when it wrote the report, right
after a step. The accounting lives in the operator's memory: an operator restart starts it again
(see `start_clock`), and its precision is the interval between reports and between polls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ringleader.constants import FailureAction
from ringleader.reports import IncarnationReport, ProgressReport
from ringleader.statusmodels import JobStatus, LastFailure

RESTART_ACTIONS = frozenset({FailureAction.RESTART_WORKER, FailureAction.RESTART_GANG})

Recovered = tuple[str, float]  # (action, seconds from the failure to the first step after it)


@dataclass(frozen=True)
class Outage:
    """A stretch without training: from `since` until a step completed after `last_event`."""

    since: float
    last_event: float  # the start, or the newest failure within the outage
    restarts: tuple[tuple[str, float], ...] = ()  # (action, failure time) awaiting their step


@dataclass(frozen=True)
class TrainingClock:
    """What one job's time went on, as far as this operator process has seen."""

    start_time: datetime  # status.startTime counted from; a new one (a resume) starts over
    counted_from: float  # that time, or when this process first saw the job already training
    failure_seen: tuple[Any, ...] | None  # identity of the status.lastFailure taken in
    lost: float = 0.0  # seconds of outages that have ended
    outage: Outage | None = None
    incarnation_at: float | None = None  # first step of the newest process group taken in
    pace: float | None = None  # the trainer's newest seconds per step


@dataclass(frozen=True)
class Resumption:
    """A process group's first step, seen for the first time, and what came before it."""

    began: float  # when it completed its first step
    # The last step of the group before it, when that one was counted: from counted_from on,
    # never after `began`; outages start there too, so neither needs clamping.
    since: float | None
    redone: float  # seconds of steps that group trained and this one trains again


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def is_after(moment: float, status_time: float) -> bool:
    """Whether `moment` surely follows a status time, which is rounded down to the second."""
    # Within the same second it may be the old group's last report, written just before.
    return moment >= status_time + 1.0


def step_completed_at(report: ProgressReport | None) -> float | None:
    """When the step a progress report tells of was completed; None if it tells of none.

    A report in any state but training is a worker's last word as it stops or finishes: the
    step it tells of belongs to the group that is going away."""
    if report is None or report.updated_at is None or not report.training:
        return None
    return report.updated_at


def _failure_id(last: LastFailure | None) -> tuple[Any, ...] | None:
    # Two failures can share a second; they never share a second and a pod.
    if last is None or last.time is None:
        return None
    return (last.time, last.pod_uid or last.pod, last.action)


def start_clock(status: JobStatus, now: float) -> TrainingClock | None:
    """A clock for a job seen for the first time (or started again); None before it starts."""
    start_time = status.start_time
    start = _epoch(start_time)
    if start_time is None or start is None:
        return None
    last = status.last_failure
    stepped = _epoch(status.progress.updated_at if status.progress else None)
    if stepped is None or not is_after(stepped, start):
        # No step since the start yet: everything since then is known to be an outage.
        clock = TrainingClock(start_time, start, None, outage=Outage(start, start))
        return _take_in_failure(clock, last)
    # It trained before this process saw it; what its time went on then is unknown, so count
    # from now. A failure with no step after it in status is a recovery still under way.
    clock = TrainingClock(start_time, now, _failure_id(last))
    failed = _epoch(last.time if last else None)
    if last is None or failed is None or is_after(stepped, failed):
        return clock
    return replace(clock, outage=Outage(now, failed, _restarts(last, failed)))


def _restarts(last: LastFailure, failed: float) -> tuple[tuple[str, float], ...]:
    action = last.action
    return ((str(action), failed),) if action in RESTART_ACTIONS else ()


def _take_in_failure(clock: TrainingClock, last: LastFailure | None) -> TrainingClock:
    """A new status.lastFailure: an outage starts at its time, or the current one goes on."""
    clock = replace(clock, failure_seen=_failure_id(last))
    failed = _epoch(last.time if last else None)
    if last is None or failed is None or failed < clock.counted_from:
        return clock  # from before the counting began (before a suspension, say)
    began = clock.incarnation_at
    if clock.outage is None and began is not None and is_after(began, failed):
        return clock  # recorded late: the group training now began after it, counted then
    restarts = _restarts(last, failed)
    outage = clock.outage
    if outage is None:
        return replace(clock, outage=Outage(failed, failed, restarts))
    later = max(outage.last_event, failed)
    return replace(clock, outage=Outage(outage.since, later, outage.restarts + restarts))


def _end_outage(
    clock: TrainingClock, step_at: float | None, resumed: Resumption | None
) -> tuple[TrainingClock, list[Recovered]]:
    """End the outage if a step followed its newest failure; report the restarts it ends.

    A new group whose first step followed the failure ends it at that step, counted from the
    last step before it; otherwise the newest step seen ends it, counted from the failure."""
    outage = clock.outage
    if outage is None:
        return _count_unrecorded(clock, resumed), []
    if resumed is not None and is_after(resumed.began, outage.last_event):
        since = outage.since if resumed.since is None else min(outage.since, resumed.since)
        ended, redone = resumed.began, resumed.redone
    elif step_at is not None and is_after(step_at, outage.last_event):
        since, ended, redone = outage.since, step_at, 0.0
    else:
        return clock, []
    recovered = [(action, ended - failed) for action, failed in outage.restarts]
    lost = clock.lost + max(ended - since, 0.0) + redone
    return replace(clock, lost=lost, outage=None), recovered


def _count_unrecorded(clock: TrainingClock, resumed: Resumption | None) -> TrainingClock:
    """A group that began with no outage open: its predecessor stopped with no failure told."""
    if resumed is None or resumed.since is None or resumed.began <= clock.counted_from:
        return clock
    gap = resumed.began - resumed.since  # _resumption keeps since within [counted_from, began]
    return replace(clock, lost=clock.lost + gap + resumed.redone)


def _resumption(clock: TrainingClock, report: ProgressReport | None) -> Resumption | None:
    """The report's process group, if the clock has not taken it in yet."""
    if report is None or not report.training or report.incarnation is None:
        return None
    group = report.incarnation
    if group.first_step_at == clock.incarnation_at:
        return None
    since = group.previous_step_at
    if since is None or since > group.first_step_at or since < clock.counted_from:
        # No group before it, or one from before the counting (an earlier job of the same
        # name on the volume, or before this operator process started): nothing to date by.
        return Resumption(group.first_step_at, None, 0.0)
    return Resumption(group.first_step_at, since, _redone_seconds(group, clock.pace))


def _redone_seconds(group: IncarnationReport, pace: float | None) -> float:
    """The time of the steps the group before trained, which this one trains again."""
    if group.previous_step is None or pace is None or group.previous_step < group.first_step:
        return 0.0
    return (group.previous_step - group.first_step + 1) * pace


def advance(
    clock: TrainingClock | None,
    status: JobStatus,
    report: ProgressReport | None,
    now: float,
) -> tuple[TrainingClock | None, list[Recovered]]:
    """The job's clock after its latest status and report, and the recoveries that ended."""
    if clock is None or clock.start_time != status.start_time:
        clock = start_clock(status, now)
        if clock is None:
            return None, []
    resumed = _resumption(clock, report)  # its redone steps at the pace of the group before
    clock, recovered = _take_in(clock, status.last_failure, step_completed_at(report), resumed)
    if resumed is not None:
        clock = replace(clock, incarnation_at=resumed.began)
    if report is not None and report.training and report.seconds_per_step is not None:
        clock = replace(clock, pace=report.seconds_per_step)
    return clock, recovered


def _take_in(
    clock: TrainingClock,
    last: LastFailure | None,
    step_at: float | None,
    resumed: Resumption | None,
) -> tuple[TrainingClock, list[Recovered]]:
    """The failure in status taken in, and the outage ended by the report's step."""
    if last is None or last.time is None or _failure_id(last) == clock.failure_seen:
        return _end_outage(clock, step_at, resumed)
    failed = _epoch(last.time)
    if step_at is not None and failed is not None and step_at < failed:
        # A step the poller saw late, from before the failure: it ends the earlier outage.
        clock, recovered = _end_outage(clock, step_at, resumed)
        return _take_in_failure(clock, last), recovered
    return _end_outage(_take_in_failure(clock, last), step_at, resumed)


def accounting_end(status: JobStatus, now: float) -> float:
    """Now, or when the job finished: a finished job's goodput stays as it ended."""
    finished = _epoch(status.completion_time)
    return now if finished is None else finished


def compute_goodput(clock: TrainingClock, end: float) -> float | None:
    """Share of the wall time from the clock's start to `end` spent outside outages."""
    wall = end - clock.counted_from
    if wall <= 0:
        return None
    lost = clock.lost + (max(end - clock.outage.since, 0.0) if clock.outage else 0.0)
    return min(max((wall - lost) / wall, 0.0), 1.0)
