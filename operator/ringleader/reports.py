"""What the trainer tells the operator, parsed once: its progress document (served at /progress
and left as the pod's termination message when it ends) and its failure verdict.

The trainer defines these (ringleader_client.contract). The two packages ship in different
images, so the operator keeps this mirror, as it does for the env contract; the trainer's tests
check that both agree and feed the trainer's real output through these readers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from ringleader.constants import FailureClass

PROGRESS_PATH: Final = "/progress"  # the newest progress document of the job
HEARTBEATS_PATH: Final = "/heartbeats"  # pod name → that pod's own last step
# What the endpoint answers (404) before the first report: it is there, the reports will come.
NOT_YET_KEY: Final = "error"
NOT_YET: Final = "no progress yet"


class TrainerState(StrEnum):
    """Where the trainer is, as its reports say. Only while Training does the step move; in
    every other state it stands still on purpose (no hang) and a report tells of no new step."""

    TRAINING = "Training"
    FINISHING = "Finishing"  # final checkpoint and evaluation
    STOPPING = "Stopping"  # checkpoint before a stop (SIGTERM, a group that re-forms)
    FINISHED = "Finished"
    STOPPED_HERE = "StoppedHere"  # stopped on this pod's own SIGTERM, checkpoint committed
    STOPPED_ELSEWHERE = "StoppedElsewhere"  # stopped because another pod was leaving


# Keys of the progress document (the trainer's Reporter writes them).
STEP: Final = "step"
STATE: Final = "state"
EPOCH: Final = "epoch"
LOSS: Final = "loss"
SAMPLES_PER_SECOND: Final = "samples_per_second"
SECONDS_PER_STEP: Final = "seconds_per_step"
WORLD_SIZE: Final = "world_size"
UPDATED_AT: Final = "updated_at"  # seconds since the epoch, right after the step
CHECKPOINT: Final = "checkpoint"  # {step, path, time}: the newest committed checkpoint
PROGRESS_KEYS: Final = frozenset(
    {STEP, STATE, EPOCH, LOSS, SAMPLES_PER_SECOND, SECONDS_PER_STEP, WORLD_SIZE, UPDATED_AT}
    | {CHECKPOINT}
)
# Keys of the failure verdict in a termination message.
FAILURE_CLASS: Final = "failureClass"
FAILURE_MESSAGE: Final = "message"


@dataclass(frozen=True)
class CheckpointReport:
    """The newest committed checkpoint, as the trainer reports it."""

    step: int
    path: str
    time: float | None


@dataclass(frozen=True)
class ProgressReport:
    """One progress document."""

    step: int
    state: str = TrainerState.TRAINING
    epoch: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    seconds_per_step: float | None = None
    world_size: int | None = None
    updated_at: float | None = None
    checkpoint: CheckpointReport | None = None

    @property
    def training(self) -> bool:
        """Whether the report was written after a step of a group that goes on training."""
        return self.state == TrainerState.TRAINING


def parse_progress(doc: Any) -> ProgressReport | None:
    """A progress document as the typed report; None when it tells of no step."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get(STEP), int):
        return None
    return ProgressReport(
        step=doc[STEP],
        state=str(doc.get(STATE) or TrainerState.TRAINING),
        epoch=_int(doc.get(EPOCH)),
        loss=_float(doc.get(LOSS)),
        samples_per_second=_float(doc.get(SAMPLES_PER_SECOND)),
        seconds_per_step=_float(doc.get(SECONDS_PER_STEP)),
        world_size=_int(doc.get(WORLD_SIZE)),
        updated_at=_float(doc.get(UPDATED_AT)),
        checkpoint=_checkpoint(doc.get(CHECKPOINT)),
    )


def _checkpoint(doc: Any) -> CheckpointReport | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(STEP), int):
        return None
    return CheckpointReport(doc[STEP], str(doc.get("path") or ""), _float(doc.get("time")))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def parse_termination_message(message: str) -> Mapping[str, Any] | None:
    """A termination message the trainer wrote (JSON); None for anyone else's last words."""
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    return doc if isinstance(doc, Mapping) else None


def parse_failure_verdict(message: str) -> tuple[FailureClass, str] | None:
    """The trainer's own verdict in a termination message ({"failureClass": "Communication",
    "message": "..."}): the class and its explanation (else the whole message)."""
    doc = parse_termination_message(message)
    if doc is None or doc.get(FAILURE_CLASS) not in set(FailureClass):
        return None
    return FailureClass(doc[FAILURE_CLASS]), str(doc.get(FAILURE_MESSAGE) or message)
