"""The training loop: DDP or FSDP, gradient accumulation, deterministic data order, checkpoints."""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ringleader_client import contract
from ringleader_client.contract import TrainerState
from ringleader_client.resume import data
from ringleader_client.resume.checkpoint import Checkpointer, CheckpointError
from ringleader_client.stopping import StopRequest
from ringleader_trainer import parallel, preflight, workerfigures
from ringleader_trainer.feeder import BatchFeeder
from ringleader_trainer.options import Options
from ringleader_trainer.report import Reporter
from ringleader_trainer.steptimes import StepTimer, peak_memory_bytes
from ringleader_trainer.workloads import Workload

log = logging.getLogger("ringleader.loop")


class Outcome(enum.Enum):
    """How a worker's loop ended (the state it reports last); the worker maps it to an exit
    code."""

    FINISHED = TrainerState.FINISHED
    STOPPED_HERE = TrainerState.STOPPED_HERE  # on this worker's SIGTERM
    STOPPED_ELSEWHERE = TrainerState.STOPPED_ELSEWHERE  # on another worker's SIGTERM


@dataclass
class Runtime:
    """This worker's place in the group and where shared files live."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    ckpt_group: dist.ProcessGroup
    root: Path
    keep: int
    pod_name: str
    job_name: str
    local_world_size: int = 1  # processes per pod: hybrid sharding's inner dimension


@dataclass
class Parts:
    """What the loop trains and checkpoints."""

    model: nn.Module  # unwrapped (DDP), or sharded in place (FSDP)
    wrapped: nn.Module  # what forward runs on: the DDP wrapper, or the sharded model
    optim: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    workload: Workload
    feeder: BatchFeeder


def build_schedule(total_steps: int, warmup: int) -> Any:
    """Linear warm-up then cosine decay to 10%, as a function of the step (never the world)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def capture_rng() -> dict[str, Any]:
    """Return this process's random number generator states."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore random number generator states captured by capture_rng."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_state(parts: Parts, position: data.Position, step: int, rng: list[Any]) -> dict[str, Any]:
    """Return the state dict a checkpoint holds."""
    model_sd, optim_sd = get_state_dict(parts.model, parts.optim)
    trainer = {
        "step": step,
        "epoch": position.epoch,
        "cursor": position.cursor,
        "scheduler": parts.sched.state_dict(),
        "rng": rng,
    }
    # One opaque value: DCP stores non-tensors by pickling and hands them back whole on load.
    return {"model": model_sd, "optim": optim_sd, "trainer": pickle.dumps(trainer)}


def resume(parts: Parts, ckpt: Checkpointer, rt: Runtime) -> tuple[data.Position, int]:
    """Load the newest valid checkpoint, if any; return the position and step to go on from."""
    path = ckpt.choose_resume_path()
    if path is None:
        log.info("ringleader: no checkpoint found; starting from step 0")
        return data.Position(0, 0), 0
    state = build_state(parts, data.Position(0, 0), 0, [])
    try:
        ckpt.load(path, state)
    except CheckpointError as exc:
        # Its files passed their checks, so an older checkpoint would most likely not load
        # either; training from scratch would silently throw the work away. Stop and say why.
        raise CheckpointError(
            f"{exc} (its files are intact: did the model or optimizer change since it was saved?)"
        ) from exc
    set_state_dict(
        parts.model, parts.optim, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    trainer = pickle.loads(state["trainer"])
    parts.sched.load_state_dict(trainer["scheduler"])
    rngs = trainer["rng"]
    restore_rng(rngs[rt.rank % len(rngs)])
    log.info(
        "ringleader: resumed from %s at step %d (saved by %d ranks, now %d)",
        path,
        trainer["step"],
        len(rngs),
        rt.world_size,
    )
    return data.Position(trainer["epoch"], trainer["cursor"]), int(trainer["step"])


def rank_micro_batches(step_indices: torch.Tensor, rt: Runtime, micro: int) -> list[torch.Tensor]:
    """Return this rank's micro-batches of a step (micro 0: its whole share at once)."""
    share = data.shard_indices(step_indices, rt.rank, rt.world_size)
    return data.split_micro_batches(share, micro or max(1, share.numel()))


def run_step(
    parts: Parts,
    step_indices: torch.Tensor,
    rt: Runtime,
    micro: int,
    next_step: torch.Tensor | None = None,
    *,
    timer: StepTimer | None = None,
) -> torch.Tensor:
    """Train one optimizer step on a rank's share; return its summed per-sample loss.

    `next_step`, the indices of the step after, lets its first micro-batch be fetched ahead;
    `timer` is told where the rank waited (for its data, for the gradient exchange)."""
    timer = timer or StepTimer(rt.device)
    batches = rank_micro_batches(step_indices, rt, micro)
    after = [] if next_step is None else rank_micro_batches(next_step, rt, micro)[:1]
    upcoming = [*batches[1:], *after]
    scale = data.compute_loss_scale(step_indices.numel(), rt.world_size)
    parts.optim.zero_grad(set_to_none=True)
    total = torch.zeros((), device=rt.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=rt.device.type == "cuda")
    for i, batch in enumerate(batches):
        with timer.fetching():
            x, y = parts.feeder.take(batch)
        if i < len(upcoming):  # fetched while this micro-batch computes
            parts.feeder.fetch_ahead(upcoming[i])
        # Only the last micro-batch exchanges gradients: one per step, whatever the world size.
        last = i == len(batches) - 1
        sync = contextlib.nullcontext() if last else parallel.accumulate_only(parts.wrapped)
        with sync:
            with autocast:
                losses = parts.workload.loss(parts.wrapped(x), y)
            with timer.backward(syncing=last):
                torch.autograd.backward(losses.sum() * scale)
        total += losses.detach().sum()
    parts.optim.step()
    parts.sched.step()
    return total


def agree_on_step(row: torch.Tensor, rt: Runtime) -> torch.Tensor:
    """All-gather every rank's row (workerfigures.pack_row: its loss sum, stop request and
    step figures); workerfigures.agree reads the group's loss and stop from the result."""
    rows = torch.empty(rt.world_size * row.numel(), dtype=row.dtype, device=row.device)
    dist.all_gather_single(rows, row)  # flat: gloo takes no stacked output
    return rows.view(rt.world_size, row.numel())


def gather_pods(rt: Runtime) -> list[str]:
    """Every rank's pod, by rank (once per group: it stays the same until the group re-forms)."""
    pods: list[Any] = [None] * rt.world_size
    dist.all_gather_object(pods, rt.pod_name)
    return [str(pod) for pod in pods]


def save_checkpoint(
    parts: Parts, ckpt: Checkpointer, pos: data.Position, step: int, block: bool
) -> float:
    """Gather every rank's RNG state and save a checkpoint; return seconds the loop was held."""
    rngs = ckpt.gather(capture_rng())
    return ckpt.save(step, build_state(parts, pos, step, rngs), block=block)


def train(parts: Parts, opts: Options, rt: Runtime, stop: StopRequest) -> Outcome:
    """Run the loop from the newest checkpoint to the last epoch or a SIGTERM."""
    ckpt = Checkpointer(rt.root, rt.keep, rt.ckpt_group)
    pos, step = resume(parts, ckpt, rt)
    pods = gather_pods(rt)
    reporter = Reporter(rt, opts, parts.workload.num_samples, pods=pods)
    asked = contract.read_launch_env().preflight_megabytes
    reporter.preflight = preflight.run_preflight(asked, rt.device, rt.rank, pods)
    timer = StepTimer(rt.device)
    timer.watch(parts.wrapped, parts.model)
    n = parts.workload.num_samples
    order = data.DataOrder(n, opts.seed, opts.global_batch)
    outcome = Outcome.FINISHED
    while pos.epoch < opts.epochs:
        started = time.perf_counter()
        timer.start()
        indices = order.step_at(pos)
        if step == opts.debug_stall_at_step:
            stall_for_tests(rt, stop)
        slow_down_for_tests(rt, opts)
        following = data.advance(pos, indices.numel(), n)
        next_step = order.step_at(following) if following.epoch < opts.epochs else None
        loss_sum = run_step(parts, indices, rt, opts.micro_batch, next_step, timer=timer)
        loss, stopping = agree_and_observe(
            loss_sum, stop.is_set(), indices, rt, (timer, reporter.window)
        )
        reporter.trace(step, pos, indices, loss / indices.numel())
        pos, step = following, step + 1
        if stopping:
            stop.agreed()  # every peer answered: the checkpoint below will complete
            reporter.announce(step, pos, ckpt.newest_committed(), TrainerState.STOPPING)
            save_checkpoint(parts, ckpt, pos, step, block=True)
            outcome = Outcome.STOPPED_HERE if stop.is_set() else Outcome.STOPPED_ELSEWHERE
            break
        if checkpoint_due(step, opts):
            save_checkpoint(parts, ckpt, pos, step, block=opts.sync_checkpoint)
        reporter.report(
            step,
            pos,
            loss / indices.numel(),
            samples=indices.numel(),
            newest=ckpt.newest_committed(),
        )
        pace(started, opts.min_step_seconds)
        stop.note_step(time.perf_counter() - started)
    if outcome is Outcome.FINISHED:
        reporter.announce(step, pos, ckpt.newest_committed(), TrainerState.FINISHING)
        finish(parts, ckpt, reporter, pos, step, saved=checkpoint_due(step, opts))
    ckpt.close()
    reporter.announce(step, pos, ckpt.newest_committed(), outcome.value)
    return outcome


def agree_and_observe(
    loss_sum: torch.Tensor,
    stop_here: bool,
    indices: torch.Tensor,
    rt: Runtime,
    observers: tuple[StepTimer, workerfigures.Window],
) -> tuple[float, bool]:
    """The step's agreement: every rank's loss, stop request and figures gathered in one
    collective (timed: the wait is told with the next step) and kept in the window; return
    (the group's loss sum, whether to stop)."""
    timer, window = observers
    samples = data.shard_indices(indices, rt.rank, rt.world_size).numel()
    row = workerfigures.pack_row(
        loss_sum, stop_here, timer.finish(), samples, peak_memory_bytes(rt.device)
    )
    began = time.perf_counter()
    # One copy to the host (on a GPU), read by both the agreement and the window.
    rows = agree_on_step(row, rt).to("cpu", torch.float64)
    loss, stopping = workerfigures.agree(rows)
    timer.agreed(time.perf_counter() - began)
    window.add(rows)
    return loss, stopping


def checkpoint_due(step: int, opts: Options) -> bool:
    """Whether the loop saves a checkpoint after this step (decided from the step alone, so
    every rank agrees)."""
    return step % opts.checkpoint_every == 0


def finish(
    parts: Parts,
    ckpt: Checkpointer,
    reporter: Reporter,
    pos: data.Position,
    step: int,
    *,
    saved: bool,
) -> None:
    """Save the final checkpoint; rank 0 evaluates and writes the final weights (a sharded
    model's forward and weights need every rank, so there every rank evaluates)."""
    if not saved:
        save_checkpoint(parts, ckpt, pos, step, block=True)
    ckpt.wait()
    weights = parallel.gather_full_weights(parts.model)
    evaluation: dict[str, float] = {}
    evaluating = dist.get_rank() == 0 or parallel.is_sharded(parts.wrapped)
    if evaluating and parts.workload.evaluate:
        evaluation = parts.workload.evaluate(parts.model)
    if dist.get_rank() == 0:
        reporter.record_final(weights, evaluation)


def stall_for_tests(rt: Runtime, stop: StopRequest) -> None:
    """Debug: the last rank of the first restart attempt stops making progress until SIGTERM.

    The other ranks then wait in the step's all-reduce: the hang the operator must notice.
    """
    first_attempt = os.environ.get(contract.RESTART_ATTEMPT, "0") == "0"
    if first_attempt and rt.rank == rt.world_size - 1:
        print(f"ringleader: debug: rank {rt.rank} stalls until SIGTERM", flush=True)
        stop.wait()


def slow_down_for_tests(rt: Runtime, opts: Options) -> None:
    """Debug: a rank, or the ranks on a node, compute slower than the others (a straggler for
    the operator to name). The nodes file is read every step, so a test can slow a node down
    once it knows where the pods run."""
    if opts.debug_slow_seconds <= 0:
        return
    slow = opts.debug_slow_rank == rt.rank
    if not slow and opts.debug_slow_nodes_file:
        node = os.environ.get("NODE_NAME", "")
        with contextlib.suppress(OSError):
            listed = (rt.root / opts.debug_slow_nodes_file).read_text().split()
            slow = bool(node) and node in listed
    if slow:
        time.sleep(opts.debug_slow_seconds)


def pace(started: float, min_seconds: float) -> None:
    """Sleep out the rest of min_seconds (a debug aid that lets tests act between steps)."""
    left = min_seconds - (time.perf_counter() - started)
    if left > 0:
        time.sleep(left)
