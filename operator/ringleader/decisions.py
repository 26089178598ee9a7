"""What the steps of a reconcile hand back instead of changing shared state: the job's failure,
an event to post, and the earliest time at which time alone changes a decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class JobFailure:
    """The verdict that the job has failed, e.g. DeadlineExceeded, with a message for users."""

    reason: str
    message: str


class Event(NamedTuple):
    """A Kubernetes event to post on the job (what `kubectl describe dtj` shows)."""

    type: str  # Normal or Warning
    reason: str
    message: str


def sooner(a: float | None, b: float | None) -> float | None:
    """The earlier of two wake-up delays (seconds), either of which may be None (no wake-up)."""
    return b if a is None else a if b is None else min(a, b)
