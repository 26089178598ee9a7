"""Every rank's step figures: gathered with the step's agreement, kept over a window of steps,
and told as rank 0's progress (bounded) and each pod's heartbeat (its own ranks).

The step's agreement was an all-reduce of (loss, stop); it is now an all-gather of one row per
rank that also holds the rank's step times, samples and memory peak: one collective per step,
as before, and every rank learns every rank's figures (the sums it needs are taken locally, in
rank order, so every rank agrees on them).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ringleader_client import contract as k
from ringleader_trainer.steptimes import StepTimes

WINDOW_STEPS = 20  # steps each reported figure is averaged over: one slow step is not a pattern
MAX_RANKS_REPORTED = 64  # ranks in the progress document; above it, the slowest
COLUMNS = ("loss", "stop", "data", "compute", "communication", "samples", "memory")
_AT = {name: i for i, name in enumerate(COLUMNS)}


def pack_row(
    loss_sum: torch.Tensor, stop: bool, times: StepTimes, samples: int, memory: int
) -> torch.Tensor:
    """This rank's row for the step's all-gather (float64: memory in bytes stays exact)."""
    values = [0.0, float(stop), times.data, times.compute, times.communication, samples, memory]
    row = torch.tensor(values, dtype=torch.float64, device=loss_sum.device)
    row[0] = loss_sum.double()
    return row


def agree(rows: torch.Tensor) -> tuple[float, bool]:
    """(the group's loss sum, whether any rank asked to stop) from the gathered rows."""
    loss = sum(float(x) for x in rows[:, _AT["loss"]].tolist())  # rank order: the same everywhere
    return loss, bool((rows[:, _AT["stop"]] > 0).any())


@dataclass(frozen=True)
class RankFigures:
    """One rank over the window: seconds per step by part, throughput, memory peak."""

    rank: int
    pod: str
    data: float
    compute: float
    communication: float
    samples_per_second: float | None
    memory_peak_bytes: int

    @property
    def work(self) -> float:
        """Seconds per step on its own share (data and compute): what makes a rank slow."""
        return self.data + self.compute

    def document(self) -> dict[str, Any]:
        """The rank as the progress document and the heartbeat tell it."""
        return {
            k.RANK_INDEX: self.rank,
            k.RANK_POD: self.pod,
            k.STEP_SECONDS: round(self.data + self.compute + self.communication, 6),
            k.DATA_SECONDS: round(self.data, 6),
            k.COMPUTE_SECONDS: round(self.compute, 6),
            k.COMMUNICATION_SECONDS: round(self.communication, 6),
            k.SAMPLES_PER_SECOND: None
            if self.samples_per_second is None
            else round(self.samples_per_second, 3),
            k.MEMORY_PEAK_BYTES: self.memory_peak_bytes,
        }


class Window:
    """The gathered rows of the last WINDOW_STEPS steps."""

    def __init__(self, pods: Sequence[str], steps: int = WINDOW_STEPS) -> None:
        self.pods = list(pods)  # rank -> its pod
        self._rows: deque[torch.Tensor] = deque(maxlen=steps)

    def add(self, rows: torch.Tensor) -> None:
        """A step's rows (world x COLUMNS)."""
        self._rows.append(rows.detach().to("cpu", torch.float64))

    def __len__(self) -> int:
        return len(self._rows)

    def figures(self) -> list[RankFigures]:
        """Every rank's figures over the window, by rank; empty before the first step."""
        if not self._rows:
            return []
        stacked = torch.stack(list(self._rows))  # steps x world x columns
        mean, total = stacked.mean(dim=0), stacked.sum(dim=0)
        peak = stacked[:, :, _AT["memory"]].amax(dim=0)
        out = []
        for rank in range(stacked.shape[1]):
            seconds = float(total[rank, _AT["data"] : _AT["communication"] + 1].sum())
            samples = float(total[rank, _AT["samples"]])
            out.append(
                RankFigures(
                    rank=rank,
                    pod=self.pods[rank] if rank < len(self.pods) else "",
                    data=float(mean[rank, _AT["data"]]),
                    compute=float(mean[rank, _AT["compute"]]),
                    communication=float(mean[rank, _AT["communication"]]),
                    samples_per_second=samples / seconds if seconds > 0 else None,
                    memory_peak_bytes=int(peak[rank]),
                )
            )
        return out


def progress_document(figures: Sequence[RankFigures], steps: int) -> dict[str, Any] | None:
    """The progress document's `workers`: every rank up to MAX_RANKS_REPORTED (above it, the
    slowest), and the median of every rank's work, against which a slow one stands out."""
    if not figures:
        return None
    shown = sorted(figures, key=lambda f: f.work, reverse=True)[:MAX_RANKS_REPORTED]
    return {
        k.WINDOW_STEPS: steps,
        k.MEDIAN_WORK_SECONDS: round(statistics.median(f.work for f in figures), 6),
        k.RANKS: [f.document() for f in sorted(shown, key=lambda f: f.rank)],
    }


def pod_document(figures: Sequence[RankFigures], pod: str) -> list[dict[str, Any]]:
    """The heartbeat's `ranks`: this pod's own ranks (each pod exports these on /metrics)."""
    return [f.document() for f in figures if f.pod == pod]
