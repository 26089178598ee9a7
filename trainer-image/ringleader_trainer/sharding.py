"""Fully sharded data parallelism (PyTorch's FSDP2, `fully_shard`): which modules are sharding
units, activation checkpointing of those units, the device mesh (hybrid sharding across pods) and
the mixed-precision policy.

Each unit's parameters, gradients and optimizer state live on one rank in N: a unit's
parameters are all-gathered just before its forward (and again before its backward) and freed
after, its gradients reduce-scattered. The root is sharded last and holds what no unit took.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointWrapper,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


def has_parameters(module: nn.Module) -> bool:
    """Whether the module or any module below it holds a parameter."""
    return next(module.parameters(), None) is not None


def choose_units(model: nn.Module, unit_types: Sequence[type[nn.Module]]) -> list[nn.Module]:
    """Return the modules to shard as units, the root excluded, children before parents.

    With unit_types (the workload's, e.g. its transformer block): every module of those types.
    Without: every direct child that holds parameters (for a Sequential MLP, each layer)."""
    if unit_types:
        found = [m for m in model.modules() if m is not model and isinstance(m, tuple(unit_types))]
        return found[::-1]  # modules() is parents first; fully_shard wants the inner ones first
    return [child for child in model.children() if has_parameters(child)]


def recompute_activations(model: nn.Module, units: list[nn.Module]) -> list[nn.Module]:
    """Wrap each unit so that backward recomputes its activations instead of keeping them;
    return the wrappers, which become the units (units should not nest)."""
    wanted = {id(unit) for unit in units}
    # Non-reentrant torch.utils.checkpoint; state-dict keys stay those of the unwrapped model.
    apply_activation_checkpointing(
        model, checkpoint_wrapper_fn=checkpoint_wrapper, check_fn=lambda m: id(m) in wanted
    )
    wrappers: list[nn.Module] = [m for m in model.modules() if isinstance(m, CheckpointWrapper)]
    return wrappers[::-1]


def plan_mesh(world_size: int, local_world_size: int, hybrid: bool) -> tuple[int, ...]:
    """Return the mesh shape: (pods, processes per pod) for hybrid sharding, else (world,).

    Hybrid (HSDP) shards inside a pod and replicates across pods, so the all-gathers and
    reduce-scatters of every step stay on the pod's fast links (NVLink) and only one gradient
    all-reduce per step crosses the network. With one process per pod, or one pod, it would
    only add a dimension of size 1."""
    pods, rest = divmod(world_size, local_world_size)
    if hybrid and local_world_size > 1 and pods > 1 and rest == 0:
        return (pods, local_world_size)
    return (world_size,)


def build_mesh(device: torch.device, shape: tuple[int, ...]) -> DeviceMesh:
    """Build the device mesh of a planned shape (ranks of a pod are consecutive under torchrun,
    so a row of a 2-D mesh is one pod)."""
    names = ("replicate", "shard") if len(shape) == 2 else ("shard",)
    return init_device_mesh(device.type, shape, mesh_dim_names=names)


def build_mixed_precision(device: torch.device) -> MixedPrecisionPolicy:
    """The policy FSDP applies to every unit: on a GPU, bf16 compute with fp32 gradient
    reduction (the master weights and optimizer state stay fp32); on the CPU none.

    CPU stays fp32: gloo has no fast bf16 path, and the CPU tests compare weights bit for bit
    and accuracy against DDP's fp32. Change this one function to try another policy."""
    if device.type == "cuda":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_model(
    model: nn.Module, units: list[nn.Module], mesh: DeviceMesh, policy: MixedPrecisionPolicy
) -> nn.Module:
    """Shard each unit, then the root, in place; return the model (now an FSDPModule)."""
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model
