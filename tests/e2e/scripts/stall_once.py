"""A user's script that hangs once: in the first restart attempt, its last rank stops making
progress at step 10 while the others wait for it in an all-reduce (what a deadlock or a stuck
data loader looks like from outside). Reports through the client library, so the operator sees
the step stall; the gang restart it makes trains to the end."""

from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist

import ringleader_client as ringleader

STEPS = 60


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    first_attempt = os.environ.get("RINGLEADER_RESTART_ATTEMPT") == "0"
    print(f"rank {rank} of {world}, first attempt: {first_attempt}", flush=True)
    for step in range(1, STEPS + 1):
        total = torch.ones(1)
        dist.all_reduce(total)
        ringleader.report(step, loss=1.0 / step, samples=world)
        if step == 10 and first_attempt and rank == world - 1:
            print(f"rank {rank}: stalling at step {step}", flush=True)
            time.sleep(3600)
        time.sleep(0.1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
