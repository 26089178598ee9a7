"""Progress out, for any training loop: global rank 0 writes the job's progress document, each
pod's local rank 0 its heartbeat, in the files the pod's endpoint serves (progressfiles.py).

The built-in trainer and users' scripts (through the functions in ringleader_client) write the
same documents, so the operator mirrors either into status and watches either for hangs.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringleader_client import contract as k
from ringleader_client.contract import TrainerState
from ringleader_client.progressfiles import (
    PROGRESS_FILE,
    Throttle,
    heartbeat_path,
    read_json,
    write_json_atomic,
)

MAX_METRICS = 32  # a script's own figures kept per report: the document stays small


@dataclass(frozen=True)
class Place:
    """Where this process stands: its ranks, its pod and job, and the job's shared directory."""

    rank: int
    local_rank: int
    world_size: int
    pod_name: str
    job_name: str
    root: Path  # the checkpoint volume: progress and heartbeats live there


@dataclass(frozen=True)
class SavedCheckpoint:
    """The newest committed checkpoint, as progress reports it."""

    step: int
    path: str
    time: float


class ProgressReporter:
    """Writes progress (global rank 0) and this pod's heartbeat (local rank 0), throttled."""

    def __init__(
        self, place: Place, progress_interval: float = 1.0, heartbeat_interval: float = 1.0
    ) -> None:
        self.place = place
        self._progress = Throttle(progress_interval)
        self._heartbeat = Throttle(heartbeat_interval)
        self._window_start, self._window_samples, self._window_steps = time.monotonic(), 0, 0
        self._rate: float | None = None
        self._step_seconds: float | None = None
        self.newest: SavedCheckpoint | None = None
        self.final: dict[str, Any] = {}  # kept in every later document (e.g. an evaluation)
        self._last: _Written | None = None  # the newest step reported (written or not yet)
        self._written: _Written | None = None  # the newest progress written
        self._beaten: _Written | None = None  # the newest heartbeat written
        # A step reported too soon after the last write is written when the interval is over
        # (by a timer), so that the files tell the last step reached even if no other follows:
        # a job stuck in a collective shows where it stopped, a finished one its last step.
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        # Read before this process writes: the newest step of the group before it, if any.
        self._previous = previous_step(place.root) if place.rank == 0 else None
        self._first: tuple[int, float] | None = None  # this process's first step and its time

    def report(
        self,
        step: int,
        *,
        loss: float | None = None,
        samples: int = 0,
        epoch: int | None = None,
        extra: dict[str, Any] | None = None,
        state: TrainerState = TrainerState.TRAINING,
        force: bool = False,
        beat: dict[str, Any] | None = None,
    ) -> None:
        """Record a finished step (samples: trained in it by the whole group); write progress
        and heartbeat when their intervals allow, or now with force. extra: more keys of the
        progress document; beat: more keys of this pod's heartbeat."""
        with self._lock:
            self._window_samples += samples
            self._window_steps += state == TrainerState.TRAINING
            now = time.time()
            if self._first is None and state == TrainerState.TRAINING:
                self._first = (step, now)
            self._last = _Written(step, loss, epoch, extra or {}, state, now, beat or {})
            beating = self.place.local_rank == 0 and (force or self._heartbeat.ready())
            progress = self.place.rank == 0 and (force or self._progress.ready())
            self._write(beating, progress)
            if self._due() and self._timer is None:
                self._start_timer()

    def flush(self) -> None:
        """Write the newest reported step where the files do not tell it yet."""
        with self._lock:
            self._timer = None
            self._write(self._beaten is not self._last, self._written is not self._last)

    def _write(self, beat: bool, progress: bool) -> None:
        last = self._last
        if last is None:
            return
        if beat and self.place.local_rank == 0:
            self._write_heartbeat(last)
            self._beaten = last
        if progress and self.place.rank == 0:
            if self._written is not last:  # a new step: the pace since the last write
                self._measure()
            self._write_progress(last)
            self._written = last

    def _due(self) -> bool:
        """Whether the newest step is still to be written somewhere."""
        beat = self.place.local_rank == 0 and self._beaten is not self._last
        return beat or (self.place.rank == 0 and self._written is not self._last)

    def _start_timer(self) -> None:
        delay = max(self._progress.seconds_left(), self._heartbeat.seconds_left())
        self._timer = threading.Timer(delay, self._flush_quietly)
        self._timer.daemon = True
        self._timer.start()

    def _flush_quietly(self) -> None:
        # On the timer's thread an error has nowhere to go: the next report tries again.
        with contextlib.suppress(OSError):
            self.flush()

    def announce(self, step: int, state: TrainerState, epoch: int | None = None) -> None:
        """Write progress and heartbeat now: the step counter stands still from here on purpose.

        The operator judges a hang only while the state is Training, so a final checkpoint and
        evaluation, or a checkpoint before stopping, however long, is not taken for one. The
        last loss and epoch stay in the document.
        """
        last = self._last
        loss = last.loss if last is not None else None
        epoch = epoch if epoch is not None or last is None else last.epoch
        extra = last.extra if last is not None else None
        beat = last.beat if last is not None else None
        self.report(step, loss=loss, epoch=epoch, extra=extra, state=state, force=True, beat=beat)

    def checkpoint_saved(self, step: int, path: str, when: float | None = None) -> None:
        """A checkpoint is committed: the progress document names it as the newest, now."""
        with self._lock:
            self.newest = SavedCheckpoint(step, path, time.time() if when is None else when)
            self._write(beat=False, progress=True)

    def _write_heartbeat(self, told: _Written) -> None:
        body = {
            **told.beat,
            "pod": self.place.pod_name,
            k.STEP: told.step,
            "time": time.time(),
            "pid": os.getpid(),
            "rank": self.place.rank,
            k.WORLD_SIZE: self.place.world_size,
            k.STATE: told.state.value,
        }
        write_json_atomic(heartbeat_path(self.place.root, self.place.pod_name), body)

    def _measure(self) -> None:
        now = time.monotonic()
        if now > self._window_start and self._window_steps > 0:
            if self._window_samples:
                self._rate = self._window_samples / (now - self._window_start)
            # The operator's hang detector judges a stall against this pace until it has
            # measured one itself (it may have seen only one step before a hang).
            self._step_seconds = (now - self._window_start) / self._window_steps
        self._window_start, self._window_samples, self._window_steps = now, 0, 0

    def _write_progress(self, told: _Written) -> None:
        newest = self.newest
        body: dict[str, Any] = {
            "job": self.place.job_name,
            k.STATE: told.state.value,
            k.STEP: told.step,
            k.SAMPLES_PER_SECOND: self._rate,
            k.SECONDS_PER_STEP: self._step_seconds,
            k.WORLD_SIZE: self.place.world_size,
            k.UPDATED_AT: told.at,  # when the step was done, also when written again
            k.CHECKPOINT: None
            if newest is None
            else {"step": newest.step, "path": newest.path, "time": newest.time},
            **told.extra,
            **self.final,
        }
        if self._first is not None:
            body[k.INCARNATION] = self._incarnation(self._first)
        if told.epoch is not None:
            body[k.EPOCH] = told.epoch
        if told.loss is not None and math.isfinite(told.loss):
            body[k.LOSS] = told.loss
        write_json_atomic(self.place.root / PROGRESS_FILE, body)

    def _incarnation(self, first: tuple[int, float]) -> dict[str, Any]:
        previous = self._previous or (None, None)
        return {
            k.FIRST_STEP: first[0],
            k.FIRST_STEP_AT: first[1],
            k.PREVIOUS_STEP: previous[0],
            k.PREVIOUS_STEP_AT: previous[1],
        }


def previous_step(root: Path) -> tuple[int, float] | None:
    """The step the job's progress document tells of, and when it was done: the group before
    this process reached it (or a job of the same name before this one, on the same volume)."""
    doc = read_json(root / PROGRESS_FILE) or {}
    step, at = doc.get(k.STEP), doc.get(k.UPDATED_AT)
    if not isinstance(step, int) or not isinstance(at, int | float) or isinstance(at, bool):
        return None
    return step, float(at)


@dataclass(frozen=True)
class _Written:
    """What a progress document tells of one reported step (written when the interval allows,
    at once for an announcement or a checkpoint's commit)."""

    step: int
    loss: float | None
    epoch: int | None
    extra: dict[str, Any]
    state: TrainerState
    at: float  # when the step it tells of was reported
    beat: dict[str, Any]  # more keys of the heartbeat


def bounded_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """A script's own figures: numbers only, at most MAX_METRICS of them, by name."""
    out = {}
    for name, value in sorted((metrics or {}).items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(name)[:64]] = float(value)
    return dict(list(out.items())[:MAX_METRICS])
