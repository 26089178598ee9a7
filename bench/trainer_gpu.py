"""The trainer on one GPU, side by side in one run (NCCL group of one, bf16 autocast).

    python -m bench.trainer_gpu            # on a machine with a CUDA device
    python -m bench.trainer_gpu --dry-run  # the same code on the CPU, tiny sizes: a check it runs

Prints, for the synthetic model at two sizes trained by the trainer's own step (DDP, gradient
accumulation, AdamW): samples/s with inputs fetched on the host (what the loop does) and with
the sample bank already on the device (what the input path costs), and the model arithmetic
that is (6 x parameters x samples/s) next to a bf16 matrix product's rate measured in the same
run; the large size again under DDP, FSDP and FSDP with activation checkpointing, with each one's
peak memory. Then how long the loop is held by a staged async checkpoint (pinned host buffers) vs a
sync one. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist

from bench.trainer import bench_saves, describe_saves, join_group, time_steps
from ringleader_trainer.loop import Runtime
from ringleader_trainer.options import parse_options
from ringleader_trainer.steptimes import peak_memory_bytes
from ringleader_trainer.worker import build_parts
from tests.trainer.conftest import pick_free_port


class Size(NamedTuple):
    """One synthetic model and how it is batched."""

    label: str
    dim: int
    hidden: int
    layers: int
    batch: int
    micro: int


SIZES = (
    Size("small: the CPU benchmark's MLP", 512, 2048, 3, 4096, 1024),
    Size("large", 4096, 8192, 8, 4096, 1024),
)
DRY_RUN_SIZES = (Size("dry run", 64, 128, 2, 64, 16),)


def synthetic(dim: int, hidden: int, layers: int) -> tuple[str, ...]:
    """Command-line options of the synthetic workload at one size."""
    sizes = {"dim": dim, "hidden": hidden, "layers": layers}
    return ("--workload", "synthetic", *(f"--workload-option={k}={v}" for k, v in sizes.items()))


def measure_matmul(device: torch.device, n: int, repeats: int = 10) -> float:
    """Return the rate of an n x n x n bf16 matrix product on random data, in TFLOP/s."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e12


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (the CPU has none)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(rt: Runtime, size: Size, steps: int, on_device: bool) -> tuple[float, int]:
    """Return (samples/s, parameters) of training steps; `on_device` moves the synthetic
    workload's sample bank to the GPU first, so fetching a batch costs no host work or copy."""
    options = [*synthetic(size.dim, size.hidden, size.layers), "--global-batch", str(size.batch)]
    parts = build_parts(parse_options([*options, "--micro-batch", str(size.micro)]), rt)
    if on_device:
        bank_x, bank_y = (t.to(rt.device) for t in parts.workload.fetch(torch.arange(4096)))

        def fetch_on_device(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            idx = idx.to(rt.device) % 4096
            return bank_x[idx], bank_y[idx]

        parts.workload.fetch = fetch_on_device
    params = sum(p.numel() for p in parts.model.parameters())
    seconds = time_steps(parts, rt, size.batch, size.micro, steps)
    del parts
    torch.cuda.empty_cache()
    return size.batch / seconds, params


def print_throughput(rt: Runtime, sizes: tuple[Size, ...], steps: int, peak: float) -> None:
    """Time every size both ways and print the figures with their share of the peak."""
    for size in sizes:
        host, params = throughput(rt, size, steps, on_device=False)
        device, _ = throughput(rt, size, steps, on_device=True)
        print(
            f"{size.label} ({params / 1e6:.1f}M parameters, {size.dim}-{size.hidden}x"
            f"{size.layers}, batch {size.batch} in micro-batches of {size.micro}):"
        )
        for how, rate in (("inputs from the host", host), ("sample bank on the device", device)):
            model_tflops = 6 * params * rate / 1e12
            print(
                f"  {how:26s} {rate:9.0f} samples/s  {model_tflops:7.1f} TFLOP/s of model "
                f"arithmetic ({model_tflops / peak:.2f} of the matrix product)"
            )
        print(f"  host input path / on-device: {host / device:.2f}")


# One device, the large size: DDP, then FSDP (bf16 compute, fp32 gradient reduction), then FSDP
# recomputing each unit's activations in backward (issue 19: memory and rate side by side).
PARALLELISMS = (
    ("DDP (bf16 autocast)", ()),
    ("FSDP (bf16 params, fp32 reduce)", ("--parallel", "fsdp")),
    ("FSDP + activation checkpointing", ("--parallel", "fsdp", "--activation-checkpointing")),
)


def memory_and_rate(
    rt: Runtime, size: Size, steps: int, extra: tuple[str, ...]
) -> tuple[float, int, int]:
    """Return (samples/s, parameters, peak memory in bytes) of training steps with `extra`."""
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(rt.device)
    options = [*synthetic(size.dim, size.hidden, size.layers), "--global-batch", str(size.batch)]
    parts = build_parts(parse_options([*options, "--micro-batch", str(size.micro), *extra]), rt)
    params = sum(p.numel() for p in parts.model.parameters())
    seconds = time_steps(parts, rt, size.batch, size.micro, steps)
    peak = peak_memory_bytes(rt.device)
    del parts
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
    return size.batch / seconds, params, peak


def print_parallelisms(rt: Runtime, size: Size, steps: int, peak: float) -> None:
    """DDP, FSDP and FSDP with recomputation on one device: peak memory and model arithmetic
    (6 x parameters x samples/s: recomputation's extra forward is not counted as useful)."""
    print(f"== one device, {size.dim}-{size.hidden}x{size.layers}, batch {size.batch} ==")
    for label, extra in PARALLELISMS:
        rate, params, memory = memory_and_rate(rt, size, steps, extra)
        tflops = 6 * params * rate / 1e12
        print(
            f"  {label:34s} peak {memory / 2**30:7.2f} GiB  {rate:9.0f} samples/s  "
            f"{tflops:7.1f} TFLOP/s of model arithmetic ({tflops / peak:.2f} of the matrix product)"
        )


def main() -> None:
    """Run every figure on the first CUDA device (or the CPU with --dry-run) and print them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="CPU, gloo, tiny sizes")
    dry = parser.parse_args().dry_run
    device = torch.device("cpu") if dry else torch.device("cuda", 0)
    with tempfile.TemporaryDirectory() as tmp:
        rt = join_group(0, 1, pick_free_port(), Path(tmp), device)
        name = "CPU" if dry else torch.cuda.get_device_name(device)
        print(f"== {name}, torch {torch.__version__}, backend {dist.get_backend()} ==")
        peak = measure_matmul(device, 256 if dry else 8192)
        print(f"bf16 matrix product (random data): {peak:.1f} TFLOP/s")
        print_throughput(rt, DRY_RUN_SIZES if dry else SIZES, 2 if dry else 10, peak)
        print_parallelisms(rt, DRY_RUN_SIZES[0] if dry else SIZES[1], 2 if dry else 10, peak)
        save_model = synthetic(64, 128, 2) if dry else synthetic(2048, 4096, 4)
        held = bench_saves(rt, repeats=3, model=save_model)
        print(f"== loop held by a checkpoint, {held['state_mb']:.0f} MB model+AdamW ==")
        print(describe_saves(held))
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
