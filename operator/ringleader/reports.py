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
WORKERS: Final = "workers"  # every rank's step figures over a window (the built-in trainer)
PREFLIGHT: Final = "preflight"  # the group's network, measured before its first step
INCARNATION: Final = "incarnation"  # this process's first step, and the last one before it
PROGRESS_KEYS: Final = frozenset(
    {STEP, STATE, EPOCH, LOSS, SAMPLES_PER_SECOND, SECONDS_PER_STEP, WORLD_SIZE, UPDATED_AT}
    | {CHECKPOINT, WORKERS, PREFLIGHT, INCARNATION}
)
# Keys of `incarnation`.
FIRST_STEP: Final = "first_step"
FIRST_STEP_AT: Final = "first_step_at"
PREVIOUS_STEP: Final = "previous_step"
PREVIOUS_STEP_AT: Final = "previous_step_at"
INCARNATION_KEYS: Final = frozenset({FIRST_STEP, FIRST_STEP_AT, PREVIOUS_STEP, PREVIOUS_STEP_AT})
# Keys of `preflight` and of each of its links.
PREFLIGHT_MEGABYTES: Final = "megabytes"
PREFLIGHT_BUS_GBPS: Final = "bus_gbps"
PREFLIGHT_MEDIAN_IN_POD_GBPS: Final = "median_in_pod_gbps"
PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS: Final = "median_across_pods_gbps"
PREFLIGHT_LINKS: Final = "links"
PREFLIGHT_MEASURED_AT: Final = "measured_at"
LINK_FROM: Final = "from"
LINK_TO: Final = "to"
LINK_FROM_RANK: Final = "from_rank"
LINK_TO_RANK: Final = "to_rank"
LINK_GBPS: Final = "gbps"
PREFLIGHT_KEYS: Final = frozenset(
    {PREFLIGHT_MEGABYTES, PREFLIGHT_BUS_GBPS, PREFLIGHT_MEDIAN_IN_POD_GBPS, PREFLIGHT_LINKS}
    | {PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS, PREFLIGHT_MEASURED_AT}
)
LINK_KEYS: Final = frozenset({LINK_FROM, LINK_TO, LINK_FROM_RANK, LINK_TO_RANK, LINK_GBPS})
# Keys of `workers` and of each of its ranks.
WINDOW_STEPS: Final = "window_steps"
MEDIAN_WORK_SECONDS: Final = "median_work_seconds"
RANKS: Final = "ranks"
RANK_INDEX: Final = "rank"
RANK_POD: Final = "pod"
STEP_SECONDS: Final = "step_seconds"
DATA_SECONDS: Final = "data_seconds"
COMPUTE_SECONDS: Final = "compute_seconds"
COMMUNICATION_SECONDS: Final = "communication_seconds"
MEMORY_PEAK_BYTES: Final = "memory_peak_bytes"
RANK_KEYS: Final = frozenset(
    {RANK_INDEX, RANK_POD, STEP_SECONDS, DATA_SECONDS, COMPUTE_SECONDS, COMMUNICATION_SECONDS}
    | {SAMPLES_PER_SECOND, MEMORY_PEAK_BYTES}
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
class RankFigures:
    """One rank's seconds per step by part over the trainer's window."""

    rank: int
    pod: str
    data: float
    compute: float
    communication: float

    @property
    def work(self) -> float:
        """Seconds per step on its own share: what makes a rank slow (not its waiting)."""
        return self.data + self.compute


@dataclass(frozen=True)
class WorkerFigures:
    """Every rank's figures (the slowest, when there are many) over the last steps."""

    window_steps: int
    median_work: float
    ranks: tuple[RankFigures, ...]


@dataclass(frozen=True)
class LinkReport:
    """What one rank received from the rank before it in the ring, GB/s."""

    source_pod: str
    target_pod: str
    source: int
    target: int
    gbps: float

    @property
    def in_pod(self) -> bool:
        """Both ends in one pod: not the network between pods."""
        return self.source_pod == self.target_pod


@dataclass(frozen=True)
class PreflightReport:
    """The group's network as measured before its first step."""

    megabytes: int
    bus_gbps: float
    median_in_pod_gbps: float | None
    median_across_pods_gbps: float | None
    links: tuple[LinkReport, ...]
    measured_at: float


@dataclass(frozen=True)
class IncarnationReport:
    """The reporting process's first step, and the job's newest step before it started."""

    first_step: int
    first_step_at: float
    previous_step: int | None  # None: no earlier progress document on the volume
    previous_step_at: float | None


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
    workers: WorkerFigures | None = None
    preflight: PreflightReport | None = None
    incarnation: IncarnationReport | None = None

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
        workers=_workers(doc.get(WORKERS)),
        preflight=_preflight(doc.get(PREFLIGHT)),
        incarnation=_incarnation(doc.get(INCARNATION)),
    )


def _incarnation(doc: Any) -> IncarnationReport | None:
    if not isinstance(doc, Mapping):
        return None
    first, first_at = _int(doc.get(FIRST_STEP)), _float(doc.get(FIRST_STEP_AT))
    if first is None or first_at is None:
        return None
    previous, previous_at = _int(doc.get(PREVIOUS_STEP)), _float(doc.get(PREVIOUS_STEP_AT))
    if previous is None or previous_at is None:
        previous = previous_at = None
    return IncarnationReport(first, first_at, previous, previous_at)


def _preflight(doc: Any) -> PreflightReport | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(PREFLIGHT_LINKS), list):
        return None
    megabytes, bus = _int(doc.get(PREFLIGHT_MEGABYTES)), _float(doc.get(PREFLIGHT_BUS_GBPS))
    measured = _float(doc.get(PREFLIGHT_MEASURED_AT))
    if megabytes is None or bus is None or measured is None:
        return None
    links = tuple(link for link in map(_link, doc[PREFLIGHT_LINKS]) if link is not None)
    in_pod = _float(doc.get(PREFLIGHT_MEDIAN_IN_POD_GBPS))
    across = _float(doc.get(PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS))
    return PreflightReport(megabytes, bus, in_pod, across, links, measured)


def _link(doc: Any) -> LinkReport | None:
    if not isinstance(doc, Mapping):
        return None
    ends = _int(doc.get(LINK_FROM_RANK)), _int(doc.get(LINK_TO_RANK))
    gbps = _float(doc.get(LINK_GBPS))
    if ends[0] is None or ends[1] is None or gbps is None:
        return None
    pods = str(doc.get(LINK_FROM) or ""), str(doc.get(LINK_TO) or "")
    return LinkReport(pods[0], pods[1], ends[0], ends[1], gbps)


def _workers(doc: Any) -> WorkerFigures | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(RANKS), list):
        return None
    steps, median = _int(doc.get(WINDOW_STEPS)), _float(doc.get(MEDIAN_WORK_SECONDS))
    if steps is None or median is None:
        return None
    ranks = tuple(r for r in map(_rank, doc[RANKS]) if r is not None)
    return WorkerFigures(steps, median, ranks)


def _rank(doc: Any) -> RankFigures | None:
    if not isinstance(doc, Mapping) or _int(doc.get(RANK_INDEX)) is None:
        return None
    parts = [_float(doc.get(key)) for key in (DATA_SECONDS, COMPUTE_SECONDS, COMMUNICATION_SECONDS)]
    if any(part is None for part in parts):
        return None
    data, compute, communication = (float(p or 0.0) for p in parts)
    return RankFigures(doc[RANK_INDEX], str(doc.get(RANK_POD) or ""), data, compute, communication)


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
