"""How the model is spread over the group: DDP (every rank holds all of it) or FSDP (each rank
holds a shard: ringleader_trainer.sharding), and the few places where the loop must know which.

Checkpoints need no case of their own: `get_state_dict` gives DDP's plain tensors or FSDP's
DTensor shards, and torch.distributed.checkpoint saves and loads (and reshards) either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule
from torch.nn.parallel import DistributedDataParallel

from ringleader_trainer import sharding

if TYPE_CHECKING:
    from ringleader_trainer.loop import Runtime
    from ringleader_trainer.options import Options


def wrap_model(
    model: nn.Module, opts: Options, rt: Runtime, unit_types: Sequence[type[nn.Module]]
) -> nn.Module:
    """Return what the loop runs forward on: a DDP wrapper of the model, or, with
    --parallel fsdp, the model itself sharded in place. Build the optimizer after this."""
    units = sharding.choose_units(model, unit_types)
    if opts.activation_checkpointing:
        units = sharding.recompute_activations(model, units)
    if opts.parallel == "ddp":
        return DistributedDataParallel(
            model,
            device_ids=[rt.local_rank] if rt.device.type == "cuda" else None,
            bucket_cap_mb=25,
            gradient_as_bucket_view=True,
        )
    shape = sharding.plan_mesh(rt.world_size, rt.local_world_size, opts.hybrid_sharding)
    mesh = sharding.build_mesh(rt.device, shape)
    return sharding.shard_model(model, units, mesh, sharding.build_mixed_precision(rt.device))


def is_sharded(wrapped: nn.Module) -> bool:
    """Whether the model is FSDP-sharded: its forward is then a collective of every rank."""
    return isinstance(wrapped, FSDPModule)


@contextlib.contextmanager
def accumulate_only(wrapped: nn.Module) -> Iterator[None]:
    """Within it, backward adds gradients up locally without exchanging them (every micro-batch
    of a step but the last)."""
    if isinstance(wrapped, FSDPModule):
        # FSDP keeps unsharded gradients until the step's last backward reduce-scatters them.
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        assert isinstance(wrapped, DistributedDataParallel)
        with wrapped.no_sync():
            yield


def gather_full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every rank calls this (FSDP all-gathers each shard): rank 0 gets the whole model's
    weights on the CPU under the unwrapped model's names, the other ranks an empty dict."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=options)
    return {name: value for name, value in weights.items() if isinstance(value, torch.Tensor)}
