"""DDP vs FSDP on a model of 200M parameters, and what activation checkpointing trades
(CPU, gloo, one thread per process), side by side in one run.

    .venv/bin/python -m bench.sharding [--quick]

Prints, for DDP and FSDP at 1, 2 and 4 ranks: each rank's parameter + gradient + optimizer
bytes (counted from its tensors: a DTensor counts its local shard), its resident memory after
the steps and its peak, and its samples per second. Then, for one rank, the bytes a forward pass
keeps for backward with and without activation checkpointing, and the step time of each.
Figures, not assertions: bench/RESULTS.md keeps them with the command.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from bench.trainer import spawn
from ringleader_client.resume import data
from ringleader_trainer.loop import Parts, Runtime, run_step
from ringleader_trainer.options import parse_options
from ringleader_trainer.worker import build_parts
from ringleader_trainer.workloads import Workload, build_synthetic

# 12 layers of 4096 x 4096: 201.4M parameters.
BIG = ["--workload", "synthetic", "--workload-option", "dim=4096"]
BIG += ["--workload-option", "hidden=4096", "--workload-option", "layers=12"]
# Blocks of two layers (the sharding and recomputation units, as a transformer's blocks are)
# and a larger batch, where activations weigh: what recomputation saves and costs.
BLOCKS = ["--workload", "bench.sharding:build_blocks"]
MIB = 2**20


class Block(nn.Sequential):
    """Two layers and their activations: one unit of sharding and recomputation."""

    def __init__(self, width: int) -> None:
        super().__init__(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU())


def build_blocks(options: dict[str, str]) -> Workload:
    """The synthetic workload's data through `blocks` Blocks of `width` (a workload for
    --workload bench.sharding:build_blocks)."""
    width, blocks = int(options.get("width", "4096")), int(options.get("blocks", "2"))
    synthetic = build_synthetic({"dim": str(width), "hidden": str(width), "layers": "1"})
    head = nn.Linear(width, 10)
    synthetic.model = nn.Sequential(*(Block(width) for _ in range(blocks)), head)
    synthetic.sharding_units = (Block,)
    return synthetic


def local_bytes(tensor: torch.Tensor) -> int:
    """Bytes this rank holds for a tensor: a DTensor's local shard."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return int(local.numel() * local.element_size())


def state_bytes(parts: Parts) -> dict[str, int]:
    """This rank's parameters, gradients and optimizer state, in bytes."""
    params = list(parts.model.parameters())
    optim = [
        value
        for state in parts.optim.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.dim() > 0
    ]
    return {
        "params": sum(local_bytes(p) for p in params),
        "grads": sum(local_bytes(p.grad) for p in params if p.grad is not None),
        "optimizer": sum(local_bytes(t) for t in optim),
    }


def resident_bytes() -> int:
    """This process's resident memory now (/proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def train_steps(parts: Parts, rt: Runtime, batch: int, steps: int) -> float:
    """Seconds per step over `steps` steps, after one warm-up step."""
    perm = data.compute_permutation(parts.workload.num_samples, 0, 0)
    for i in range(steps + 1):
        if i == 1:
            dist.barrier()
            started = time.perf_counter()
        indices = data.select_step_indices(perm, i * batch, batch)
        run_step(parts, indices, rt, 0)
    dist.barrier()
    return (time.perf_counter() - started) / steps


def largest(value: float) -> float:
    """The largest value over the group's ranks."""
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor[0])


def measure_parallelism(rt: Runtime, mode: str, per_rank: int, steps: int) -> dict[str, float]:
    """One rank's memory and throughput training BIG with --parallel mode."""
    batch = per_rank * rt.world_size
    opts = parse_options([*BIG, "--parallel", mode, "--global-batch", str(batch)])
    parts = build_parts(opts, rt)
    seconds = train_steps(parts, rt, batch, steps)
    held = state_bytes(parts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "params_m": sum(p.numel() for p in parts.model.parameters()) / 1e6,
        **{f"{k}_mib": largest(v) / MIB for k, v in held.items()},
        "resident_mib": largest(resident_bytes()) / MIB,
        "peak_mib": largest(peak) / MIB,
        "samples_per_s": per_rank / seconds,
    }


def saved_for_backward(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of activations a forward pass keeps for backward, each storage once: the saved
    tensors with the batch as their first dimension (the weights a layer also keeps are not
    activations). Inside a recomputed unit checkpointing keeps its own, and none of them."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() > 0 and tensor.shape[0] == x.shape[0]:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    return sum(seen.values())


def measure_recompute(rt: Runtime, recompute: bool, batch: int, steps: int) -> dict[str, float]:
    """Activation bytes and step time of BLOCKS under FSDP at this batch, recomputed or not."""
    extra = ["--activation-checkpointing"] if recompute else []
    opts = parse_options([*BLOCKS, "--parallel", "fsdp", "--global-batch", str(batch), *extra])
    parts = build_parts(opts, rt)
    x, _ = parts.workload.fetch(torch.arange(batch))
    activations = saved_for_backward(parts.wrapped, x)
    seconds = train_steps(parts, rt, batch, steps)
    return {"activations_mib": activations / MIB, "step_s": seconds}


def main() -> None:
    """Run both comparisons and print them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps, noisier figures")
    steps = 1 if parser.parse_args().quick else 3
    print("== 201M-parameter MLP, AdamW, 8 samples per rank: per-rank memory and throughput ==")
    print(
        f"{'':12s}{'ranks':>6s}{'params':>9s}{'grads':>9s}{'optim':>9s}{'p+g+o':>9s}"
        f"{'resident':>10s}{'peak':>9s}{'samples/s':>11s}   (MiB)"
    )
    for world in (1, 2, 4):
        for mode in ("ddp", "fsdp"):
            got = spawn(world, measure_parallelism, mode=mode, per_rank=8, steps=steps)
            total = got["params_mib"] + got["grads_mib"] + got["optimizer_mib"]
            print(
                f"{mode:12s}{world:6d}{got['params_mib']:9.0f}{got['grads_mib']:9.0f}"
                f"{got['optimizer_mib']:9.0f}{total:9.0f}{got['resident_mib']:10.0f}"
                f"{got['peak_mib']:9.0f}{got['samples_per_s']:11.2f}"
            )
    print("== activation checkpointing, FSDP, 1 rank, 2 blocks of 2 x 4096^2 (67M), 256 samples ==")
    plain = spawn(1, measure_recompute, recompute=False, batch=256, steps=steps)
    again = spawn(1, measure_recompute, recompute=True, batch=256, steps=steps)
    print(
        f"kept for backward: {plain['activations_mib']:.0f} MiB plain, "
        f"{again['activations_mib']:.0f} MiB recomputed "
        f"(ratio {again['activations_mib'] / plain['activations_mib']:.2f}); "
        f"step {plain['step_s']:.2f} s plain, {again['step_s']:.2f} s recomputed "
        f"(ratio {again['step_s'] / plain['step_s']:.2f})"
    )


if __name__ == "__main__":
    main()
