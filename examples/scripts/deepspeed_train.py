"""A DeepSpeed training script, run by torchrun in every worker pod: an MLP regression on synthetic
data (no download) with ZeRO stage 2 as the DeepSpeed config file says (a ConfigMap), on CPU
with gloo (NCCL on GPUs). The torch contract Ringleader gives every worker (torchrun's rendezvous,
MASTER_ADDR, RANK, WORLD_SIZE) is all DeepSpeed needs.

Checkpoints are DeepSpeed's own (engine.save_checkpoint: each rank writes its shard of the
optimizer state; engine.load_checkpoint reads the tag the file `latest` names), in the job's
checkpoint volume; every start resumes from the latest. Ringleader's client library puts STEP,
LOSS and LAST-CKPT in `kubectl get dtj`, and turns SIGTERM (pod deleted, preempted, scaled
down) into a checkpoint at the next step.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import time
from pathlib import Path

import deepspeed
import torch
import torch.distributed as dist
from torch import nn

import ringleader_client as ringleader
from ringleader_client.resume import agree_to_stop

STEPS = int(os.environ.get("TRAIN_STEPS", "200"))
EVERY = int(os.environ.get("CHECKPOINT_EVERY", "20"))
PACE = float(os.environ.get("STEP_SECONDS", "0"))  # slower steps, to watch a run go by
CONFIG = os.environ.get("DEEPSPEED_CONFIG", "/config/ds_config.json")
CHECKPOINTS = Path(os.environ.get("RINGLEADER_CHECKPOINT_DIR", "/checkpoints")) / "deepspeed"
KEEP = int(os.environ.get("RINGLEADER_CHECKPOINT_KEEP", "3"))
FEATURES = 32
TRUE_WEIGHTS = torch.linspace(-1.0, 1.0, FEATURES)
# A rank that stops because a peer was asked to (not itself): non-zero, so its torchrun agent
# restarts it into a new group with the peer's replacement, instead of the pod ending as done.
EXIT_PEER_STOPPED = 3


def batch(step: int, rank: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression batch, the same for a given step and rank however often it is trained."""
    generator = torch.Generator().manual_seed(step * 1000 + rank)
    x = torch.randn(size, FEATURES, generator=generator)
    return x, torch.tanh(x @ TRUE_WEIGHTS).unsqueeze(-1)


def build_engine() -> deepspeed.DeepSpeedEngine:
    """The model wrapped by DeepSpeed: its optimizer, ZeRO stage and batch size from CONFIG."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1)
    )
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=CONFIG
    )
    return engine


def resume(engine: deepspeed.DeepSpeedEngine) -> int:
    """Load the latest checkpoint, if there is one; the step to train from."""
    if not (CHECKPOINTS / "latest").exists():
        return 0
    path, state = engine.load_checkpoint(str(CHECKPOINTS))
    if path is None:  # `latest` names a tag that is not there
        return 0
    return int(state["step"])


def save(engine: deepspeed.DeepSpeedEngine, step: int) -> None:
    """A checkpoint of every rank's shard (collective: every rank calls it); then rank 0 points
    `latest` at it and keeps only the newest KEEP tags."""
    tag = f"step-{step:08d}"
    # Not save_latest: DeepSpeed's rank 0 writes `latest` as soon as its own files are written,
    # while other ranks may still be writing theirs, and in place (a crash can leave it empty).
    # save_checkpoint ends with a barrier, so after it every shard is complete.
    engine.save_checkpoint(
        str(CHECKPOINTS), tag=tag, client_state={"step": step}, save_latest=False
    )
    if engine.global_rank == 0:
        point_latest_at(tag)
        for old in sorted(CHECKPOINTS.glob("step-*"))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        ringleader.checkpoint_saved(step, str(CHECKPOINTS / tag))


def point_latest_at(tag: str) -> None:
    """Name `tag` in the file `latest`, committed by rename: it names a whole tag or the last."""
    temporary = CHECKPOINTS / f".latest.{os.getpid()}"
    temporary.write_text(tag)
    os.replace(temporary, CHECKPOINTS / "latest")


def train(engine: deepspeed.DeepSpeedEngine, start: int) -> int:
    """Train from step `start` to STEPS; the exit code (0: done, or stopped when asked)."""
    rank, world = engine.global_rank, engine.world_size
    size = engine.train_micro_batch_size_per_gpu()
    for step in range(start, STEPS):
        x, y = batch(step, rank, size)
        loss = nn.functional.mse_loss(engine(x), y)
        engine.backward(loss)
        engine.step()
        done = step + 1
        ringleader.report(done, loss=loss.item(), samples=size * world)
        asked = ringleader.stop_requested()
        stopping = agree_to_stop(asked)  # the save below is collective: every rank or none
        if stopping or done % EVERY == 0 or done == STEPS:
            save(engine, done)
        if stopping:
            print(f"rank {rank}: stopping at step {done} with a checkpoint", flush=True)
            return 0 if asked else EXIT_PEER_STOPPED
        time.sleep(PACE)
    return 0


def leave(code: int) -> None:
    """End the process with `code`, without the interpreter's own teardown.

    Why: in issue 17's measurements about 2 runs in 20 of this kind aborted at exit after
    training had succeeded: `terminate called without an active exception` (SIGABRT). That is
    C++'s std::terminate with no exception in flight, what destroying a std::thread that is
    still joinable does; the native threads alive at exit are torch.distributed's (gloo's work
    and transport threads, rank 0's TCPStore server), and finalization reaches their owners'
    destructors in no fixed order. (60 runs here before this change, ZeRO stages 1 to 3, did
    not abort, so which thread it was is not pinned down.) An abort is a failed worker to
    torchrun, and so a failed pod, for a job that was done. So the process group is destroyed
    here, while all it uses is alive and nothing is in flight (every rank has passed the last
    save's barrier), the exit handlers run (the client library's last progress and termination
    message), and os._exit ends the process before any C++ destructor can run. An exception in
    main() does not get here: it exits 1 the usual way.
    """
    dist.destroy_process_group()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> int:
    engine = build_engine()
    start = resume(engine)
    rank, stage = engine.global_rank, engine.zero_optimization_stage()
    print(f"rank {rank} of {engine.world_size}, ZeRO stage {stage}: training from step {start}")
    code = train(engine, start)
    print(f"rank {rank}: exit {code} at step {engine.global_steps}")
    return code


if __name__ == "__main__":
    leave(main())
