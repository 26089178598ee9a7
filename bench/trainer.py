"""Trainer benchmarks, side by side in one run (CPU, gloo, one thread per process).

    .venv/bin/python -m bench.trainer [--quick]

Prints: per-rank throughput of 2 ranks vs 1 process (with and without gradient accumulation),
and of 2 uncoupled processes at once (what sharing the machine costs without communication),
what measuring every rank's step costs per step (plain vs measured steps, alternating),
how long the loop is held by an async vs a sync checkpoint (and by DCP's default async_save),
and gloo all-reduce bus bandwidth vs memcpy bandwidth. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict_saver import async_save

from ringleader_client.resume import data
from ringleader_client.resume.checkpoint import Checkpointer
from ringleader_trainer import workerfigures
from ringleader_trainer.loop import (
    Parts,
    Runtime,
    agree_and_observe,
    build_state,
    run_step,
    save_checkpoint,
)
from ringleader_trainer.options import parse_options
from ringleader_trainer.steptimes import StepTimer
from ringleader_trainer.worker import build_parts

CPU = torch.device("cpu")
MODEL = (
    "--workload",
    "synthetic",
    "--workload-option",
    "hidden=2048",
    "--workload-option",
    "layers=3",
    "--workload-option",
    "dim=512",
)


def join_group(rank: int, world: int, port: int, root: Path, device: torch.device = CPU) -> Runtime:
    """Join a group on localhost with one compute thread: gloo on the CPU, NCCL on a GPU
    (checkpoints still get a gloo group, as in the worker)."""
    torch.set_num_threads(1)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(minutes=5),
    )
    group = dist.new_group(backend="gloo")
    assert group is not None
    return Runtime(
        rank=rank,
        world_size=world,
        local_rank=rank,
        device=device,
        ckpt_group=group,
        root=root,
        keep=2,
        pod_name=f"bench-{rank}",
        job_name="bench",
    )


def time_steps(
    parts: Parts,
    rt: Runtime,
    batch: int,
    micro: int,
    steps: int,
    *,
    align: Callable[[], object] = dist.barrier,
) -> float:
    """Return seconds per optimizer step, after one warm-up step; `align` starts the clock.
    Each step as the loop runs it: timed by parts, agreed with every rank's figures."""
    perm = data.compute_permutation(parts.workload.num_samples, 0, 0)
    timer, window = StepTimer(rt.device), workerfigures.Window([rt.pod_name] * rt.world_size)
    timer.watch(parts.wrapped, parts.model)
    for i in range(steps + 1):
        if i == 1:
            align()
            started = time.perf_counter()
        indices, following = (data.select_step_indices(perm, j * batch, batch) for j in (i, i + 1))
        timer.start()
        loss = run_step(parts, indices, rt, micro, following, timer=timer)
        agree_and_observe(loss, False, indices, rt, (timer, window))
    return (time.perf_counter() - started) / steps


def time_plain_steps(parts: Parts, rt: Runtime, batch: int, steps: int) -> float:
    """Seconds per step as the loop ran before it measured every rank (the baseline): no timer,
    no hooks, and an all-reduce of the loss and the stop request as the agreement."""
    perm = data.compute_permutation(parts.workload.num_samples, 0, 0)
    dist.barrier()
    started = time.perf_counter()
    for i in range(steps):
        indices, following = (data.select_step_indices(perm, j * batch, batch) for j in (i, i + 1))
        loss = run_step(parts, indices, rt, 0, following)
        packed = torch.stack([loss.float(), torch.zeros(())])
        dist.all_reduce(packed)
        float(packed[0])
    return (time.perf_counter() - started) / steps


def bench_figures(rt: Runtime, steps: int, rounds: int) -> dict[str, float]:
    """The per-step cost of the workers' figures (step timer, gradient hooks, the gathered
    agreement) on the digits model, whose steps are short enough for it to show: rounds of
    plain and measured steps alternate, on two copies of the model, and medians are kept."""
    opts = parse_options(["--workload", "digits", "--global-batch", "64"])
    plain, measured = build_parts(opts, rt), build_parts(opts, rt)
    time_plain_steps(plain, rt, 64, 2)  # warm-up of each
    time_steps(measured, rt, 64, 0, 2)
    pairs = [
        (time_plain_steps(plain, rt, 64, steps), time_steps(measured, rt, 64, 0, steps))
        for _ in range(rounds)
    ]
    before = statistics.median(p for p, _ in pairs)
    after = statistics.median(m for _, m in pairs)
    return {"plain_ms": before * 1e3, "measured_ms": after * 1e3, "ratio": after / before}


def bench_throughput(rt: Runtime, batch: int, micro: int, steps: int, **timing: Any) -> float:
    """Return this rank's samples per second training the synthetic model; `timing` is passed
    on to time_steps (its `align`)."""
    opts = parse_options([*MODEL, "--global-batch", str(batch), "--micro-batch", str(micro)])
    parts = build_parts(opts, rt)
    return batch / rt.world_size / time_steps(parts, rt, batch, micro, steps, **timing)


def run_uncoupled(index: int, ports: list[int], start: Any, kw: dict[str, int], out: Any) -> None:
    """Entry of one of several single-process groups timed at once: the machine's own cost of
    running two trainers side by side (shared cores, caches and memory), without communication."""
    with tempfile.TemporaryDirectory() as tmp:
        rt = join_group(0, 1, ports[index], Path(tmp))
        out.put(bench_throughput(rt, **kw, align=start.wait))
        dist.destroy_process_group()


def spawn_uncoupled(count: int, **kw: int) -> float:
    """Mean samples per second of `count` single processes whose timed steps start together."""
    from tests.trainer.conftest import pick_free_port  # noqa: PLC0415 - bench-only helper

    context = mp.get_context("spawn")
    queue, start = context.SimpleQueue(), context.Barrier(count)
    ports = [pick_free_port() for _ in range(count)]
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        run_uncoupled, args=(ports, start, kw, queue), nprocs=count
    )
    return float(statistics.mean(queue.get() for _ in range(count)))


def bench_saves(rt: Runtime, repeats: int, model: tuple[str, ...] = MODEL) -> dict[str, float]:
    """Return median seconds the caller is held by sync, staged-async and default async saves."""
    parts = build_parts(parse_options([*model, "--global-batch", "64"]), rt)
    time_steps(parts, rt, 64, 64, 1)  # creates Adam state, so the checkpoint has it
    ckpt, pos, held = Checkpointer(rt.root, 2, rt.ckpt_group), data.Position(0, 0), {}
    save_checkpoint(parts, ckpt, pos, 0, block=True)  # warm: buffers, files
    for mode in ("sync", "async"):
        times = []
        for i in range(repeats):
            t = time.perf_counter()
            save_checkpoint(parts, ckpt, pos, i + 1, block=mode == "sync")
            times.append(time.perf_counter() - t)
            ckpt.wait()
            dist.barrier()
        held[mode] = statistics.median(times)
    held["dcp_async_save"] = time_default_async(parts, rt, repeats)
    held["state_mb"] = (
        sum(t.numel() * t.element_size() for t in _tensors(build_state(parts, pos, 0, []))) / 1e6
    )
    ckpt.close()
    return held


def describe_saves(held: dict[str, float]) -> str:
    """One line of bench_saves' figures, each async save beside the sync one."""
    sync = held["sync"]
    return (
        f"sync dcp.save {sync:.3f}s  staged async {held['async']:.3f}s "
        f"(ratio {held['async'] / sync:.2f})  default dcp.async_save "
        f"{held['dcp_async_save']:.3f}s (ratio {held['dcp_async_save'] / sync:.2f})"
    )


def time_default_async(parts: Parts, rt: Runtime, repeats: int) -> float:
    """Return median seconds dcp.async_save (default stager, thread) holds its caller."""
    times = []
    for i in range(repeats):
        state = build_state(parts, data.Position(0, 0), 0, [])
        t = time.perf_counter()
        future = async_save(
            state, checkpoint_id=str(rt.root / f"default-{i}"), process_group=rt.ckpt_group
        )
        times.append(time.perf_counter() - t)
        future.result()  # type: ignore[union-attr]
        dist.barrier()
    return statistics.median(times)


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    return []


def bench_allreduce(rt: Runtime, mbytes: int, repeats: int) -> float:
    """Return gloo all-reduce bus bandwidth in GB/s (nccl-tests' definition)."""
    tensor = torch.ones(mbytes * 250_000)
    dist.all_reduce(tensor)
    dist.barrier()
    t = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(tensor)
    per = (time.perf_counter() - t) / repeats
    return tensor.numel() * 4 * 2 * (rt.world_size - 1) / rt.world_size / per / 1e9


Task = str | Callable[..., Any]  # a benchmark of this module by name, or any top-level function


def run_rank(  # noqa: PLR0917 - mp.spawn passes arguments by position
    rank: int, world: int, port: int, task: Task, kw: dict[str, Any], out: Any
) -> None:
    """Entry of each benchmark process: run one task and report rank 0's figure."""
    named: dict[str, Callable[..., Any]] = {
        "throughput": bench_throughput,
        "saves": bench_saves,
        "allreduce": bench_allreduce,
        "figures": bench_figures,
    }
    fn: Callable[..., Any] = named[task] if isinstance(task, str) else task
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.environ.get("BENCH_CKPT_DIR", tmp)) / f"{fn.__name__}-{port}"
        rt = join_group(rank, world, port, root)
        result = fn(rt, **kw)
        if rank == 0:
            out.put(result)
        dist.barrier()
        dist.destroy_process_group()


def spawn(world: int, task: Task, **kw: Any) -> Any:
    """Run a task (`fn(rt, **kw)`) on `world` fresh processes and return rank 0's result."""
    from tests.trainer.conftest import pick_free_port  # noqa: PLC0415 - bench-only helper

    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        run_rank, args=(world, pick_free_port(), task, kw, queue), nprocs=world
    )
    return queue.get()


def measure_memcpy(mbytes: int = 256, repeats: int = 5) -> float:
    """Return single-thread copy bandwidth in GB/s (bytes copied per second)."""
    torch.set_num_threads(1)
    src, dst = torch.ones(mbytes * 250_000), torch.empty(mbytes * 250_000)
    dst.copy_(src)
    t = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    return src.numel() * 4 / ((time.perf_counter() - t) / repeats) / 1e9


def main() -> None:
    """Run every benchmark and print the figures side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps, noisier figures")
    steps = 3 if parser.parse_args().quick else 8
    print("== per-rank throughput, synthetic 9.5M-parameter MLP, 1 thread per process ==")
    for label, batch, micro in (
        ("plain DDP (1 micro-batch per rank)", 256, 128),
        ("accumulation (8 micro-batches per rank)", 2048, 128),
    ):
        single = spawn(1, "throughput", batch=batch // 2, micro=micro, steps=steps)
        double = spawn(2, "throughput", batch=batch, micro=micro, steps=steps)
        apart = spawn_uncoupled(2, batch=batch // 2, micro=micro, steps=steps)
        print(
            f"{label:42s} 1 proc {single:7.1f}/s  2 ranks {double:7.1f}/s per rank"
            f"  ratio {double / single:.2f}  | 2 uncoupled procs {apart:7.1f}/s each"
            f" (ratio {apart / single:.2f}); 2 ranks / 2 uncoupled {double / apart:.2f}"
        )
    cost = spawn(2, "figures", steps=20 if steps > 3 else 5, rounds=5)
    print(
        "== the workers' figures (timer, hooks, gathered agreement), digits MLP, 2 ranks == "
        f"plain {cost['plain_ms']:.2f} ms/step, measured {cost['measured_ms']:.2f} ms/step "
        f"(ratio {cost['ratio']:.3f})"
    )
    held = spawn(2, "saves", repeats=3)
    print(f"== loop held by a checkpoint, 2 ranks, {held['state_mb']:.0f} MB model+Adam ==")
    print(describe_saves(held))
    bus = spawn(2, "allreduce", mbytes=64, repeats=5)
    copy = measure_memcpy()
    print(
        f"== bandwidth == gloo all-reduce bus bandwidth (2 ranks, 64 MB) {bus:.2f} GB/s; "
        f"memcpy {copy:.2f} GB/s (ratio {bus / copy:.2f})"
    )


if __name__ == "__main__":
    main()
