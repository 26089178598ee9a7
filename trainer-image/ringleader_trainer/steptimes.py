"""Where one rank's step time goes: waiting for data, computing, waiting on the group.

In synchronous data parallelism every rank's step lasts as long as the slowest rank's: the step
time alone cannot tell the worker that holds the others back from those that wait for it. The
split can. A rank waits on its peers
- in DDP's backward, from its own last local gradient to the end of backward: the bucketed
  all-reduce still running there is the part not hidden behind computation, and it lasts until
  the slowest rank has contributed (the step's last micro-batch only: the others do not sync);
- in the step's agreement collective (the loss and the stop requests), measured by the loop.
Everything else between the step's start and its agreement is computation. FSDP exchanges its
shards inside its own backward hooks, before the gradients reach the parameters: its waiting
there counts as computation (only the agreement is told apart).

On a GPU, work is queued ahead of the host: the backward wait is timed with CUDA events on the
stream that runs it, and the host waits for the end of backward before it reads them (the
optimizer's kernels, queued by then, keep the device busy meanwhile).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


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
        self._started = time.perf_counter()
        self._data = 0.0
        self._waits: list[tuple[Any, Any]] = []  # (last local gradient, end of backward)
        self._agreement = 0.0  # the previous step's agreement, told with this step

    def watch_gradients(self, model: nn.Module) -> None:
        """Note when each local gradient is ready, to find the last one of a syncing backward."""
        for param in model.parameters():
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(self._gradient_ready)  # type: ignore[no-untyped-call]

    def _gradient_ready(self, _param: torch.Tensor) -> None:
        if self._syncing:
            self._last_gradient = self._clock.mark()

    def start(self) -> None:
        """A step begins."""
        self._started = time.perf_counter()
        self._data, self._waits = 0.0, []

    @contextlib.contextmanager
    def fetching(self) -> Iterator[None]:
        """The rank waits for its next batch."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._data += time.perf_counter() - began

    @contextlib.contextmanager
    def syncing_backward(self) -> Iterator[None]:
        """A backward that exchanges gradients: its tail after the last local gradient waits."""
        self._syncing, self._last_gradient = True, None
        try:
            yield
        finally:
            self._syncing = False
            if self._last_gradient is not None:
                self._waits.append((self._last_gradient, self._clock.mark()))

    def agreed(self, seconds: float) -> None:
        """The step's agreement took this long: told as waiting with the next step."""
        self._agreement = seconds

    def finish(self) -> StepTimes:
        """The step's parts, from its start to now (before its agreement collective)."""
        if self._clock.cuda and self._waits:
            self._waits[-1][1].synchronize()  # the backward is done: its events can be read
        total = time.perf_counter() - self._started
        backward_wait = sum(self._clock.seconds(a, b) for a, b in self._waits)
        waited = backward_wait + self._agreement
        compute = max(total - self._data - backward_wait, 0.0)
        return StepTimes(data=self._data, compute=compute, communication=waited)
