"""Pre-flight: before its first step, a group that was asked to (the operator sets
RINGLEADER_PREFLIGHT_MEGABYTES from spec.networking.preflight) measures its network.

Two measurements, each a few transfers of the given size:
- the all-reduce bus bandwidth of the whole group (nccl-tests' definition: what a gradient
  exchange of that size achieves), timed on the slowest rank;
- every link of a ring through the ranks: each rank sends to the next and receives from the one
  before, all at once, and times what it received. A worker with a slow network shows on both of
  its links, a slow link on one.
The trainer only measures and reports (links by pod, bounded); the operator judges what is slow
against the job's own threshold, as it does for stragglers.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ringleader_client import contract as k

MAX_LINKS_REPORTED = 64  # above it, the slowest
REPEATS = 3


@dataclass(frozen=True)
class Link:
    """What one rank received from the rank before it in the ring."""

    source: int
    target: int
    gbps: float
    source_pod: str
    target_pod: str

    @property
    def in_pod(self) -> bool:
        """Both ends in one pod: shared memory or NVLink, not the network."""
        return self.source_pod == self.target_pod


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _slowest(seconds: float, device: torch.device) -> float:
    """The group's slowest rank's time (every rank calls this)."""
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value[0])


def allreduce_bus_gbps(megabytes: int, device: torch.device, world_size: int) -> float:
    """The group's all-reduce bus bandwidth, GB/s, at this size."""
    tensor = torch.ones(megabytes * 2**18, device=device)  # float32: 4 bytes each
    dist.all_reduce(tensor)  # the first one sets up the connections
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(REPEATS):
        dist.all_reduce(tensor)
    _synchronize(device)
    per = _slowest((time.perf_counter() - started) / REPEATS, device)
    moved = tensor.numel() * 4 * 2 * (world_size - 1) / world_size
    return moved / per / 1e9


def ring_links(megabytes: int, device: torch.device, rank: int, pods: list[str]) -> list[Link]:
    """Every link of the ring, measured at once (every rank gets every link)."""
    world = len(pods)
    send = torch.ones(megabytes * 2**18, device=device)
    receive = torch.empty_like(send)
    after, before = (rank + 1) % world, (rank - 1) % world

    def exchange() -> float:
        started = time.perf_counter()
        ops = [dist.P2POp(dist.isend, send, after), dist.P2POp(dist.irecv, receive, before)]
        for request in dist.batch_isend_irecv(ops):
            request.wait()
        _synchronize(device)
        return time.perf_counter() - started

    exchange()  # sets up the connections
    dist.barrier()
    seconds = min(exchange() for _ in range(REPEATS))
    mine = torch.tensor([send.numel() * 4 / seconds / 1e9], dtype=torch.float64, device=device)
    every = torch.empty(world, dtype=torch.float64, device=device)
    dist.all_gather_single(every, mine)
    return [
        Link((target - 1) % world, target, float(gbps), pods[(target - 1) % world], pods[target])
        for target, gbps in enumerate(every.tolist())
    ]


def document(megabytes: int, bus_gbps: float, links: list[Link]) -> dict[str, Any]:
    """The progress document's `preflight`: the links (the slowest, when there are many) and
    the median of each kind, against which the operator judges them."""

    def median(in_pod: bool) -> float | None:
        kind = [link.gbps for link in links if link.in_pod == in_pod]
        return round(statistics.median(kind), 4) if kind else None

    shown = sorted(links, key=lambda link: link.gbps)[:MAX_LINKS_REPORTED]
    return {
        k.PREFLIGHT_MEGABYTES: megabytes,
        k.PREFLIGHT_BUS_GBPS: round(bus_gbps, 4),
        k.PREFLIGHT_MEDIAN_IN_POD_GBPS: median(True),
        k.PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS: median(False),
        k.PREFLIGHT_LINKS: [
            {
                k.LINK_FROM: link.source_pod,
                k.LINK_TO: link.target_pod,
                k.LINK_FROM_RANK: link.source,
                k.LINK_TO_RANK: link.target,
                k.LINK_GBPS: round(link.gbps, 4),
            }
            for link in sorted(shown, key=lambda link: link.target)
        ],
        k.PREFLIGHT_MEASURED_AT: time.time(),
    }


def run_preflight(
    megabytes: int, device: torch.device, rank: int, pods: list[str]
) -> dict[str, Any] | None:
    """Measure the group's network (every rank calls this); None for a group of one."""
    if len(pods) < 2 or megabytes <= 0:
        return None
    bus = allreduce_bus_gbps(megabytes, device, len(pods))
    links = ring_links(megabytes, device, rank, pods)
    found = document(megabytes, bus, links)
    if rank == 0:
        slowest = min(links, key=lambda link: link.gbps)
        print(
            f"ringleader: pre-flight: all-reduce bus bandwidth {bus:.2f} GB/s at {megabytes} MB; "
            f"slowest link {slowest.source_pod} -> {slowest.target_pod} {slowest.gbps:.2f} GB/s",
            flush=True,
        )
    return found
