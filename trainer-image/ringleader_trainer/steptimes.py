"""Where one rank's step time goes: waiting for data, computing, waiting on the group.

In synchronous data parallelism every rank's step lasts as long as the slowest rank's: the step
time alone cannot tell the worker that holds the others back from those that wait for it. The
split can. A rank waits on its peers
- in DDP's backward, from its own last local gradient to the end of backward: the bucketed
  all-reduce still running there is the part not hidden behind computation, and it lasts until
  the slowest rank has contributed (the step's last micro-batch only: the others do not sync);
- in the step's agreement collective (the loss and the stop requests), measured by the loop;
- in FSDP's all-gathers and reduce-scatters, inside its units' own hooks (fsdpwaits).
Everything else between the step's start and its agreement is computation.

On a GPU, work is queued ahead of the host: the backward wait is timed with CUDA events on the
stream that runs it, and the host waits for the end of backward before it reads them (the
optimizer's kernels, queued by then, keep the device busy meanwhile).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ringleader_trainer import fsdpwaits, parallel


@dataclass(frozen=True)
class StepTimes:
    """One rank's step, in seconds."""

    data: float
    compute: float
    communication: float

    @property
    def work(self) -> float:
        """What the rank spent on its own share: the part that makes it slow or fast."""
        return self.data + self.compute


def peak_memory_bytes(device: torch.device) -> int:
    """This rank's memory high-water mark: allocated on its GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class _Clock:
    """Marks in time: host seconds on the CPU, CUDA events (read later) on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record()
        return event

    def seconds(self, start: Any, end: Any) -> float:
        if not self.cuda:
            return float(end - start)
        return float(start.elapsed_time(end)) / 1000.0  # both complete: the host synchronized


class StepTimer:
    """Times the parts of one rank's steps (one timer per rank, reused step after step)."""

    def __init__(self, device: torch.device) -> None:
        self._clock = _Clock(device)
        self._last_gradient: Any = None
        self._syncing = False
        self.running = False  # within a step: hooks record only then (not in an evaluation)
        self._started = time.perf_counter()
        self._data = 0.0
        self._waits: list[tuple[Any, Any]] = []  # (mark, mark): the rank waited on its group
        self._agreement = 0.0  # the previous step's agreement, told with this step
        self._at_backward_end: list[Callable[[Any], None]] = []
        self._backward_end: Any = None  # the step's newest mark

    def watch(self, wrapped: nn.Module, model: nn.Module) -> None:
        """Find where this rank waits: DDP's gradient exchange after its last local gradient,
        or FSDP's exchanges inside its units' hooks (fsdpwaits)."""
        if parallel.is_sharded(wrapped):
            units = [m for m in wrapped.modules() if parallel.is_sharded(m)]
            self._at_backward_end.append(fsdpwaits.UnitWaits(self, units).close)
        else:
            self.watch_gradients(model)

    def watch_gradients(self, model: nn.Module) -> None:
        """Note when each local gradient is ready, to find the last one of a syncing backward."""
        for param in model.parameters():
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(self._gradient_ready)  # type: ignore[no-untyped-call]

    def _gradient_ready(self, _param: torch.Tensor) -> None:
        if self._syncing:
            self._last_gradient = self._clock.mark()

    def mark(self) -> Any:
        """Now, on the clock the waits are measured with."""
        return self._clock.mark()

    def waited(self, began: Any, ended: Any) -> None:
        """The rank waited on its group between these two marks."""
        self._waits.append((began, ended))

    def start(self) -> None:
        """A step begins."""
        self._started = time.perf_counter()
        self._data, self._waits, self.running, self._backward_end = 0.0, [], True, None

    @contextlib.contextmanager
    def fetching(self) -> Iterator[None]:
        """The rank waits for its next batch."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._data += time.perf_counter() - began

    @contextlib.contextmanager
    def backward(self, syncing: bool) -> Iterator[None]:
        """A backward pass; in one that exchanges gradients (DDP's, the step's last), the tail
        after the rank's last local gradient is spent waiting."""
        self._syncing, self._last_gradient = syncing, None
        try:
            yield
        finally:
            end = self._backward_end = self._clock.mark()
            for close in self._at_backward_end:
                close(end)
            if self._syncing and self._last_gradient is not None:
                self._waits.append((self._last_gradient, end))
            self._syncing = False

    def agreed(self, seconds: float) -> None:
        """The step's agreement took this long: told as waiting with the next step."""
        self._agreement = seconds

    def finish(self) -> StepTimes:
        """The step's parts, from its start to now (before its agreement collective)."""
        self.running = False
        if self._clock.cuda and self._backward_end is not None:
            self._backward_end.synchronize()  # the backward is done: its events can be read
        total = time.perf_counter() - self._started
        waits = sum(self._clock.seconds(a, b) for a, b in self._waits)
        compute = max(total - self._data - waits, 0.0)
        return StepTimes(data=self._data, compute=compute, communication=waits + self._agreement)
