"""Stopping together: SIGTERM reaches one pod (its deletion, a preemption), but every rank must
stop at the same step, or the ranks that go on wait in a collective for the ones that left."""

from __future__ import annotations

import torch
import torch.distributed as dist


def agree_to_stop(stop_here: bool) -> bool:
    """Whether any rank of the group wants to stop (an all-reduce: call it on every rank at the
    same point of each step, e.g. with ringleader_client.stop_requested())."""
    if not (dist.is_available() and dist.is_initialized()):
        return stop_here
    on_gpu = dist.get_backend() == "nccl"  # NCCL reduces tensors on the GPU only
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    flag = torch.tensor([1.0 if stop_here else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)
