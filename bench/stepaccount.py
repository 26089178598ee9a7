"""Where a training run's wall time went, from its processes' step traces (pure).

Each training process of a run leaves a trace: the steps it completed and when (rank 0's lines
of the trainer's `--trace-dir` files). A restart from a checkpoint trains the steps after that
checkpoint again; of the times a step was trained, only the last is kept in the model. So:

    kept      the time of the steps whose training was kept (a step's time runs from the step
              before it in the same process; a process's first step counts as its median step,
              within the run's window)
    redone    the time of steps trained and then lost to a restart
    no step   the rest of the wall time: processes starting, groups re-forming, waiting

and goodput = kept / wall time.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Trace = Sequence[tuple[int, float]]  # (step, time it completed), in the order completed


@dataclass(frozen=True)
class Account:
    """A run's wall time, split."""

    wall: float
    kept: float
    redone: float
    steps_kept: int  # the newest step reached: every step up to it is in the model once
    steps_redone: int

    @property
    def no_step(self) -> float:
        return max(self.wall - self.kept - self.redone, 0.0)

    @property
    def goodput(self) -> float:
        return self.kept / self.wall if self.wall > 0 else 0.0


def _durations(trace: Trace, start: float, end: float) -> list[tuple[int, float, float]]:
    """(step, completed at, its time) for the trace's steps completed within [start, end]."""
    inside = [(step, at) for step, at in trace if start <= at <= end]
    if not inside:
        return []
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(inside)]
    # Its first step's start is unknown (the process was starting): a typical step, in the run.
    first = min(statistics.median(gaps) if gaps else 0.0, inside[0][1] - start)
    return [(step, at, gap) for (step, at), gap in zip(inside, [first, *gaps], strict=True)]


def account(traces: Sequence[Trace], start: float, end: float) -> Account:
    """Split the wall time [start, end] of a run whose processes left these traces."""
    occurrences = [d for trace in traces for d in _durations(trace, start, end)]
    last_time: dict[
        int, float
    ] = {}  # step -> when it was trained the last time: that training is kept
    for step, at, _ in occurrences:
        last_time[step] = max(at, last_time.get(step, at))
    kept = redone = 0.0
    redone_steps = 0
    for step, at, took in occurrences:
        if at == last_time[step]:
            kept += took
        else:
            redone += took
            redone_steps += 1
    return Account(end - start, kept, redone, len(last_time), redone_steps)
