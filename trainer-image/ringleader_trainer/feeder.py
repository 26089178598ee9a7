"""Micro-batches to the device, fetched ahead on a GPU.

The loop asks for one micro-batch at a time. On a GPU the feeder fetches the next one on a host
thread while the current one computes, in pinned memory so its copy to the device does not hold
the host either: the loop no longer waits for `Workload.fetch` and a pageable copy each time
(about a fifth of a step for the synthetic workload on an H200: bench/RESULTS.md).

Only the timing changes. `fetch` is a pure function of the indices, so indices fetched ahead
give the same batch as indices fetched on demand: resumes stay exact.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch

from ringleader_trainer.workloads import Batch, Workload


class BatchFeeder:
    """Hands the loop its micro-batches on the device, fetched ahead where that pays."""

    def __init__(self, workload: Workload, device: torch.device, ahead: bool | None = None) -> None:
        # The workload, not its fetch: a benchmark may swap the fetch after the feeder is made.
        self._workload, self._device = workload, device
        self._pin = device.type == "cuda"
        # On the CPU a fetching thread would only take cores from the computation.
        fetch_ahead = self._pin if ahead is None else ahead
        self._pool = ThreadPoolExecutor(1, "ringleader-fetch") if fetch_ahead else None
        self._ahead: tuple[torch.Tensor, Future[Batch]] | None = None

    def fetch_ahead(self, indices: torch.Tensor) -> None:
        """Start fetching these indices on the host thread (a no-op where nothing is ahead)."""
        if self._pool is not None:
            self._ahead = (indices, self._pool.submit(self._load, indices))

    def take(self, indices: torch.Tensor) -> Batch:
        """Return the batch of these indices on the device (fetched ahead if they were)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and torch.equal(ahead[0], indices):
            x, y = ahead[1].result()
        else:
            x, y = self._load(indices)
        return x.to(self._device, non_blocking=True), y.to(self._device, non_blocking=True)

    def _load(self, indices: torch.Tensor) -> Batch:
        x, y = self._workload.fetch(indices)
        if self._pin:  # only host tensors can be pinned; a workload may return device ones
            x, y = (t.pin_memory() if t.device.type == "cpu" else t for t in (x, y))
        return x, y
