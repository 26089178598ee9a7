"""A plain PyTorch DDP training script, the kind users bring: run by torchrun (every worker pod's
PET_* variables configure it) or as `python train.py` (MASTER_ADDR, RANK, WORLD_SIZE are set).

It resumes from its newest checkpoint in the job's checkpoint volume, so a replaced pod or a
re-formed group goes on where it stopped. Ringleader's client library is optional: without it the
job runs all the same; with it (`pip install ringleader-client`, standard library only),
`kubectl get dtj` shows STEP, LOSS and LAST-CKPT, hangs are detected, and SIGTERM (preemption,
scale-down, pod deletion) becomes a checkpoint and a clean exit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

try:  # the optional part: three calls below use it
    import ringleader_client as ringleader
except ImportError:
    ringleader = None

STEPS = int(os.environ.get("TRAIN_STEPS", "300"))
EVERY = int(os.environ.get("CHECKPOINT_EVERY", "25"))
PACE = float(os.environ.get("STEP_SECONDS", "0"))  # slower steps, to watch a run go by
BATCH = 64  # samples per rank and step
CHECKPOINTS = Path(os.environ.get("RINGLEADER_CHECKPOINT_DIR", "/checkpoints")) / "train-py"
TRUE_WEIGHTS = torch.linspace(-1.0, 1.0, 32)


def batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression batch, the same for a given step and rank however often it is trained."""
    generator = torch.Generator().manual_seed(step * 1000 + rank)
    x = torch.randn(BATCH, 32, generator=generator)
    return x, (x @ TRUE_WEIGHTS).unsqueeze(-1)


def newest() -> Path | None:
    found = sorted(CHECKPOINTS.glob("step-*.pt"))
    return found[-1] if found else None


def save(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write the checkpoint under a temporary name and rename it: never half of one. With DDP
    every rank holds the whole state, so any rank can save it, alone."""
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    final = CHECKPOINTS / f"step-{step:08d}.pt"
    temp = final.with_name(f".{final.name}.{os.getpid()}")
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    torch.save(state, temp)
    os.replace(temp, final)
    for old in sorted(CHECKPOINTS.glob("step-*.pt"))[:-3]:
        old.unlink(missing_ok=True)
    if ringleader:
        ringleader.checkpoint_saved(step, str(final))


def main() -> None:
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    start = 0
    if (path := newest()) is not None:
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    print(f"rank {rank} of {world}: training from step {start}", flush=True)
    ddp = DistributedDataParallel(model)
    for step in range(start, STEPS):
        x, y = batch(step, rank)
        loss = nn.functional.mse_loss(ddp(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done = step + 1
        if ringleader:
            ringleader.report(done, loss=loss.item(), samples=BATCH * world)
        if ringleader and ringleader.stop_requested():
            # This pod is going (deleted, preempted, scaled down): keep this step and leave.
            # The other pods' torchrun agents see it go and restart their workers, which
            # resume from this checkpoint with the pod that replaces it.
            save(model, optimizer, done)
            print(f"rank {rank}: stopping at step {done} with a checkpoint", flush=True)
            return
        if done % EVERY == 0 or done == STEPS:
            if rank == 0:
                save(model, optimizer, done)
            dist.barrier()
        time.sleep(PACE)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
