"""bench.stepaccount: a run's wall time split into kept steps, redone steps and no step."""

from __future__ import annotations

import pytest

from bench.stepaccount import account


def steps(first: int, last: int, at: float) -> list[tuple[int, float]]:
    """Steps first..last completed one a second, the first at `at`."""
    return [(step, at + i) for i, step in enumerate(range(first, last + 1))]


def test_a_run_with_no_failure_keeps_all_of_its_time_but_the_start() -> None:
    run = account([steps(1, 10, 1.0)], start=0.0, end=10.0)
    assert (run.kept, run.redone, run.steps_kept) == (10.0, 0.0, 10)
    assert run.goodput == 1.0


def test_steps_trained_again_after_a_restart_count_once_the_first_time_as_redone() -> None:
    before = steps(1, 6, 1.0)  # then it fails; the newest checkpoint was step 4
    after = steps(5, 10, 10.0)  # a new process from the checkpoint, 3 s with no step
    run = account([before, after], start=0.0, end=15.0)
    assert run.kept == pytest.approx(10.0)  # steps 1-4 of the first process, 5-10 of the second
    assert run.redone == pytest.approx(2.0)  # steps 5 and 6 of the first
    assert (run.steps_kept, run.steps_redone) == (10, 2)
    assert run.no_step == pytest.approx(3.0)
    assert run.goodput == pytest.approx(10 / 15)


def test_what_falls_outside_the_window_is_not_counted() -> None:
    run = account([steps(1, 20, 1.0)], start=5.0, end=9.5)
    assert run.steps_kept == 5  # steps 5-9
    assert run.wall == 4.5 and run.kept == pytest.approx(4.0)  # step 5 started before the window
