"""Hang detection: a step counter that stopped moving, judged against the job's own pace.

Pure: the progress poller feeds it what it sees of each job's step (on the operator's clock)
and asks whether the job is hung; the reconcile loop then restarts it like any failure of class
Hang. Notice comes after max(minSeconds, stepTimeMultiple x the recent time per step), so a
fast job is caught in seconds and a slow one is not restarted for taking its time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ringleader.models import DistributedTrainingJob, FailurePolicy, HangDetection
from ringleader.reports import STEP, ProgressReport

SMOOTHING = 0.3  # weight of the newest measurement in the running time per step


@dataclass(frozen=True)
class StepWatch:
    """What has been seen of one job's step counter."""

    attempt: int
    step: int
    changed_at: float  # monotonic seconds when the step last moved (or watching began)
    seconds_per_step: float | None = None  # unknown until the step has moved once


def observe_step(
    watch: StepWatch | None, attempt: int, step: int, now: float, reported: float | None = None
) -> StepWatch:
    """The watch after seeing `step` at `now`; a new attempt or a resume starts it afresh.

    `reported` is the trainer's own time per step: the pace until one is measured here, so
    that a job seen at one step only (it hung soon after starting or resuming) is still judged.
    """
    reported = reported if reported is not None and reported > 0 else None
    if watch is None or watch.attempt != attempt or step < watch.step:
        return StepWatch(attempt, step, now, reported)
    if step == watch.step:
        if watch.seconds_per_step is None and reported is not None:
            return StepWatch(watch.attempt, watch.step, watch.changed_at, reported)
        return watch
    latest = (now - watch.changed_at) / (step - watch.step)
    pace = watch.seconds_per_step
    smoothed = latest if pace is None else (1 - SMOOTHING) * pace + SMOOTHING * latest
    return StepWatch(attempt, step, now, smoothed)


def watch_report(
    watch: StepWatch | None, attempt: int, report: ProgressReport | None, now: float
) -> StepWatch | None:
    """The job's watch after a progress report; None when there is nothing to watch.

    A trainer that says it finished, or stopped for a group that re-forms, holds its step
    counter still on purpose: the watch starts afresh once it trains again.
    """
    if report is None:
        return watch
    if not report.training:
        return None
    return observe_step(watch, attempt, report.step, now, report.seconds_per_step)


def hang_threshold(watch: StepWatch, policy: HangDetection) -> float | None:
    """Seconds without a step that make a hang; None while the pace is unknown or disabled."""
    if not policy.enabled or watch.seconds_per_step is None:
        return None  # before the first step: loading data and compiling are not hangs
    return max(float(policy.min_seconds), policy.step_time_multiple * watch.seconds_per_step)


def stalled_seconds(
    watch: StepWatch, policy: HangDetection, now: float, attempt: int
) -> float | None:
    """How long the step has not moved in this restart attempt, when that is a hang; else None.

    A watch of an earlier attempt says nothing of this one, whose pods may still be starting.
    """
    if watch.attempt != attempt:
        return None
    threshold = hang_threshold(watch, policy)
    stalled = now - watch.changed_at
    return stalled if threshold is not None and stalled > threshold else None


def read_policy(job: DistributedTrainingJob) -> HangDetection:
    """spec.failurePolicy.hangDetection, with its defaults."""
    return (job.spec.failure_policy or FailurePolicy()).hang_detection or HangDetection()


def pick_stalled_pods(heartbeats: Mapping[str, Any], workers: list[str]) -> list[str]:
    """Workers without a heartbeat, else those whose own last step is the lowest.

    When every worker stopped at the same step (all waiting in one collective), all are named.
    """
    steps: dict[str, int] = {}
    for pod in workers:
        beat = heartbeats.get(pod)
        step = beat.get(STEP) if isinstance(beat, Mapping) else None
        if isinstance(step, int):
            steps[pod] = step
    silent = sorted(pod for pod in workers if pod not in steps)
    if silent:
        return silent
    lowest = min(steps.values(), default=0)
    return sorted(pod for pod, step in steps.items() if step == lowest)
