"""What a worker tells the outside: progress (global rank 0), heartbeat (per pod), debug traces."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ringleader_trainer import contract as k
from ringleader_trainer import data
from ringleader_trainer.contract import TrainerState
from ringleader_trainer.progressfiles import (
    PROGRESS_FILE,
    Throttle,
    heartbeat_path,
    write_json_atomic,
)

if TYPE_CHECKING:
    from ringleader_trainer.checkpoint import Committed
    from ringleader_trainer.loop import Runtime
    from ringleader_trainer.options import Options

FINAL_MODEL = "final_model.pt"


class Reporter:
    """Writes progress.json, this pod's heartbeat and, when asked, per-step traces."""

    def __init__(self, rt: Runtime, opts: Options, num_samples: int) -> None:
        self.rt, self.num_samples = rt, num_samples
        self._progress = Throttle(opts.progress_interval)
        self._heartbeat = Throttle(opts.heartbeat_interval)
        self._trace = Path(opts.trace_dir) if opts.trace_dir else None
        self._window_start, self._window_samples, self._window_steps = time.monotonic(), 0, 0
        self._rate: float | None = None
        self._step_seconds: float | None = None
        self.final: dict[str, Any] = {}

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
        self._window_samples += samples
        self._window_steps += samples > 0
        if self.rt.local_rank == 0 and (force or self._heartbeat.ready()):
            self._write_heartbeat(step, state)
        if self.rt.rank == 0 and (force or self._progress.ready()):
            self._write_progress(step, pos, loss, newest, state)

    def announce(
        self, step: int, pos: data.Position, newest: Committed | None, state: TrainerState
    ) -> None:
        """Write progress and heartbeat now: the step counter stands still from here on purpose.

        The operator judges a hang only while the state is Training, so a final checkpoint and
        evaluation, or a checkpoint before stopping, however long, is not taken for one.
        """
        self.report(step, pos, None, samples=0, newest=newest, state=state, force=True)

    def _write_heartbeat(self, step: int, state: TrainerState) -> None:
        body = {
            "pod": self.rt.pod_name,
            k.STEP: step,
            "time": time.time(),
            "pid": os.getpid(),
            "rank": self.rt.rank,
            k.WORLD_SIZE: self.rt.world_size,
            k.STATE: state.value,
        }
        write_json_atomic(heartbeat_path(self.rt.root, self.rt.pod_name), body)

    def _write_progress(
        self,
        step: int,
        pos: data.Position,
        loss: float | None,
        newest: Committed | None,
        state: TrainerState,
    ) -> None:
        now = time.monotonic()
        if now > self._window_start and self._window_samples:
            self._rate = self._window_samples / (now - self._window_start)
            # The operator's hang detector judges a stall against this pace until it has
            # measured one itself (it may have seen only one step before a hang).
            self._step_seconds = (now - self._window_start) / self._window_steps
        self._window_start, self._window_samples, self._window_steps = now, 0, 0
        body: dict[str, Any] = {
            "job": self.rt.job_name,
            k.STATE: state.value,
            k.STEP: step,
            k.EPOCH: pos.epoch,
            "cursor": pos.cursor,
            k.SAMPLES_PER_SECOND: self._rate,
            k.SECONDS_PER_STEP: self._step_seconds,
            k.WORLD_SIZE: self.rt.world_size,
            k.UPDATED_AT: time.time(),
            k.CHECKPOINT: None
            if newest is None
            else {"step": newest.step, "path": newest.path, "time": newest.time},
            **self.final,
        }
        if loss is not None:
            body[k.LOSS] = loss
        write_json_atomic(self.rt.root / PROGRESS_FILE, body)

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
        with (self._trace / f"trace-{os.getpid()}.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")

    def record_final(self, model: nn.Module, evaluation: dict[str, float]) -> None:
        """Write the final weights beside the checkpoints and keep the evaluation for progress."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, self.rt.root / FINAL_MODEL)
        self.final = {"eval": evaluation}
        print(f"ringleader: training finished; evaluation {json.dumps(evaluation)}", flush=True)
