"""What a worker of the built-in trainer tells the outside: progress and heartbeat through the
client library's ProgressReporter (the one implementation, shared with users' scripts), plus
debug traces and the final weights."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ringleader_client.contract import PREFLIGHT, RANKS, WORKERS, TrainerState
from ringleader_client.progressfiles import Throttle
from ringleader_client.reporting import Place, ProgressReporter, SavedCheckpoint
from ringleader_client.resume import data
from ringleader_trainer import workerfigures

if TYPE_CHECKING:
    from ringleader_client.resume.checkpoint import Committed
    from ringleader_trainer.loop import Runtime
    from ringleader_trainer.options import Options

FINAL_MODEL = "final_model.pt"


class Reporter:
    """Writes progress.json, this pod's heartbeat and, when asked, per-step traces."""

    def __init__(
        self, rt: Runtime, opts: Options, num_samples: int, pods: list[str] | None = None
    ) -> None:
        self.rt, self.num_samples = rt, num_samples
        place = Place(rt.rank, rt.local_rank, rt.world_size, rt.pod_name, rt.job_name, rt.root)
        self.progress = ProgressReporter(place, opts.progress_interval, opts.heartbeat_interval)
        self._trace = Path(opts.trace_dir) if opts.trace_dir else None
        # One file per process. Not by pid alone: in containers every incarnation of a pod has
        # the same small pids, and a restarted process would append to its predecessor's file.
        self._trace_name = f"trace-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        # Every rank's figures of the last steps (the loop adds them); pods: every rank's pod.
        self.window = workerfigures.Window(pods or [rt.pod_name] * rt.world_size)
        # Summing the window costs a little per rank: done once per progress interval at most.
        self._summing = Throttle(min(opts.progress_interval, opts.heartbeat_interval))
        self._figures: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self.preflight: dict[str, Any] | None = None  # the group's network, measured first

    def report(
        self,
        step: int,
        pos: data.Position,
        loss: float | None,
        *,
        samples: int,
        newest: Committed | None,
        state: TrainerState = TrainerState.TRAINING,
        force: bool = False,
    ) -> None:
        """Record a finished step; write progress and heartbeat when their intervals allow."""
        self.progress.newest = None if newest is None else SavedCheckpoint(*_fields(newest))
        extra, beat = self._summed_figures(force)
        extra = {**extra, "cursor": pos.cursor}
        if self.preflight is not None:
            extra[PREFLIGHT] = self.preflight
        self.progress.report(
            step,
            loss=loss,
            samples=samples,
            epoch=pos.epoch,
            extra=extra,
            state=state,
            force=force,
            beat=beat,
        )

    def _summed_figures(self, force: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The window's figures for the progress document and the heartbeat, summed again
        when an interval is over. Only rank 0 (progress) and each pod's first rank
        (heartbeat) write them: the others skip the sums."""
        writes = self.rt.rank == 0 or self.rt.local_rank == 0
        if writes and len(self.window) > 0 and (self._summing.ready() or force):
            figures = self.window.figures()
            self._figures = (
                {WORKERS: workerfigures.progress_document(figures, len(self.window))},
                {RANKS: workerfigures.pod_document(figures, self.rt.pod_name)},
            )
        return self._figures

    def announce(
        self, step: int, pos: data.Position, newest: Committed | None, state: TrainerState
    ) -> None:
        """Write progress and heartbeat now: the step counter stands still from here on purpose
        (ProgressReporter.announce)."""
        self.report(step, pos, None, samples=0, newest=newest, state=state, force=True)

    def trace(self, step: int, pos: data.Position, indices: torch.Tensor, loss: float) -> None:
        """Debug: append the samples this rank trained on at step (and, on rank 0, the loss)."""
        if self._trace is None:
            return
        self._trace.mkdir(parents=True, exist_ok=True)
        share = data.shard_indices(indices, self.rt.rank, self.rt.world_size).tolist()
        line = {
            "step": step,
            "epoch": pos.epoch,
            "cursor": pos.cursor,
            "rank": self.rt.rank,
            "world_size": self.rt.world_size,
            "samples": share,
            "loss": loss,
            "time": time.time(),  # when the step was agreed: recovery benchmarks measure to it
        }
        with (self._trace / self._trace_name).open("a") as f:
            f.write(json.dumps(line) + "\n")

    def record_final(self, weights: dict[str, torch.Tensor], evaluation: dict[str, float]) -> None:
        """Write the final weights beside the checkpoints and keep the evaluation for progress."""
        torch.save(weights, self.rt.root / FINAL_MODEL)
        self.progress.final = {"eval": evaluation}
        print(f"ringleader: training finished; evaluation {json.dumps(evaluation)}", flush=True)


def _fields(newest: Committed) -> tuple[int, str, float]:
    return newest.step, newest.path, newest.time
