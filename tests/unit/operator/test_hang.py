"""Hang detection: the step counter's pace, the threshold, and who is named."""

from __future__ import annotations

import pytest

from ringleader import hang
from ringleader.models import HangDetection
from ringleader.reports import parse_progress
from tests.unit.operator.jobs import make_job, parse

POLICY = HangDetection(min_seconds=10, step_time_multiple=5)


def watched(*observations: tuple[int, float], attempt: int = 0) -> hang.StepWatch:
    """The watch after seeing (step, time) pairs in order."""
    watch = None
    for step, now in observations:
        watch = hang.observe_step(watch, attempt, step, now)
    assert watch is not None
    return watch


def test_the_pace_is_learnt_from_steps_moving_between_observations() -> None:
    watch = watched((0, 0.0), (10, 5.0))
    assert (watch.step, watch.changed_at, watch.seconds_per_step) == (10, 5.0, 0.5)


def test_the_pace_is_smoothed_so_one_slow_step_does_not_swing_it() -> None:
    watch = watched((0, 0.0), (10, 5.0), (11, 10.0))
    assert watch.seconds_per_step == pytest.approx(0.7 * 0.5 + 0.3 * 5.0)


def test_an_unchanged_step_keeps_the_time_it_last_moved() -> None:
    assert watched((0, 0.0), (10, 5.0), (10, 9.0)).changed_at == 5.0


@pytest.mark.parametrize(
    ("later", "fresh"),
    [((10, 0, 7.0), False), ((4, 0, 7.0), True), ((10, 1, 7.0), True)],
    ids=["same step", "resumed from a checkpoint", "new restart attempt"],
)
def test_a_resume_or_a_new_attempt_starts_watching_afresh(
    later: tuple[int, int, float], fresh: bool
) -> None:
    step, attempt, now = later
    watch = hang.observe_step(watched((0, 0.0), (10, 5.0)), attempt, step, now)
    assert (watch.seconds_per_step is None) == fresh


def test_a_job_seen_at_one_step_only_is_judged_by_the_pace_its_trainer_reports() -> None:
    first = hang.observe_step(None, 0, 22, 3.0, reported=0.1)
    assert (first.step, first.changed_at, first.seconds_per_step) == (22, 3.0, 0.1)
    later = hang.observe_step(hang.observe_step(None, 0, 22, 3.0), 0, 22, 8.0, reported=0.1)
    assert (later.changed_at, later.seconds_per_step) == (3.0, 0.1)  # still stalled since 3.0
    assert hang.stalled_seconds(later, POLICY, 14.0, attempt=0) == 11.0


def test_a_measured_pace_outweighs_the_reported_one() -> None:
    watch = hang.observe_step(watched((0, 0.0), (10, 5.0)), 0, 10, 6.0, reported=9.0)
    assert watch.seconds_per_step == 0.5
    assert hang.observe_step(None, 0, 5, 1.0, reported=0.0).seconds_per_step is None


@pytest.mark.parametrize(
    ("pace", "threshold"),
    [(None, None), (0.5, 10.0), (4.0, 20.0)],
    ids=["before the first step: never", "fast job: the floor", "slow job: its own pace"],
)
def test_the_threshold_is_the_floor_or_a_multiple_of_the_pace(
    pace: float | None, threshold: float | None
) -> None:
    watch = hang.StepWatch(0, 10, 0.0, pace)
    assert hang.hang_threshold(watch, POLICY) == threshold


def test_a_job_is_hung_only_past_its_threshold_and_never_when_disabled() -> None:
    watch = hang.StepWatch(0, 10, 100.0, 0.5)
    assert hang.stalled_seconds(watch, POLICY, 109.0, attempt=0) is None
    assert hang.stalled_seconds(watch, POLICY, 111.0, attempt=0) == 11.0
    disabled = HangDetection(enabled=False)
    assert hang.stalled_seconds(watch, disabled, 10_000.0, attempt=0) is None


def test_the_policy_defaults_apply_when_a_job_sets_none() -> None:
    policy = hang.read_policy(parse(make_job()))
    assert (policy.enabled, policy.min_seconds, policy.step_time_multiple) == (True, 120, 20)
    set_one = make_job({"failurePolicy": {"hangDetection": {"minSeconds": 30}}})
    assert hang.read_policy(parse(set_one)).min_seconds == 30


@pytest.mark.parametrize(
    ("beats", "stalled"),
    [
        ({"w-0": {"step": 41}, "w-1": {"step": 40}}, ["w-1"]),
        ({"w-0": {"step": 40}, "w-1": {"step": 40}}, ["w-0", "w-1"]),
        ({"w-0": {"step": 41}}, ["w-1"]),
        ({}, ["w-0", "w-1"]),
    ],
    ids=["one behind", "all waiting in one collective", "one silent", "no heartbeats at all"],
)
def test_the_stalled_workers_are_the_silent_or_the_furthest_behind(
    beats: dict[str, dict[str, int]], stalled: list[str]
) -> None:
    assert hang.pick_stalled_pods(beats, ["w-0", "w-1"]) == stalled


def test_a_watch_of_an_earlier_attempt_never_makes_a_hang_of_the_next() -> None:
    watch = watched((0, 0.0), (10, 5.0))
    assert hang.stalled_seconds(watch, POLICY, 100.0, attempt=0) == 95.0
    assert hang.stalled_seconds(watch, POLICY, 100.0, attempt=1) is None  # its pods may be starting


@pytest.mark.parametrize(
    "state", ["Finishing", "Stopping", "Finished", "StoppedHere", "StoppedElsewhere"]
)
def test_a_trainer_that_finished_or_stopped_is_not_watched(state: str) -> None:
    watch = watched((0, 0.0), (10, 5.0))
    assert hang.watch_report(watch, 0, parse_progress({"step": 10, "state": state}), 60.0) is None


def test_a_training_report_feeds_the_watch_and_an_empty_one_leaves_it() -> None:
    watch = watched((0, 0.0), (10, 5.0))
    moved = hang.watch_report(watch, 0, parse_progress({"step": 20, "state": "Training"}), 10.0)
    assert moved is not None and (moved.step, moved.changed_at) == (20, 10.0)
    assert hang.watch_report(watch, 0, None, 10.0) is watch
    assert hang.watch_report(watch, 0, parse_progress({"state": "Training"}), 10.0) is watch
