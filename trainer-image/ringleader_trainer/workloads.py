"""Workloads: what to train. Built-ins `digits` and `synthetic`; users plug in `module:function`.

A user workload is a function `build(options: dict[str, str]) -> Workload`, named on the command
line as `--workload mypkg.mod:build` with `--workload-option key=value` for its options. The trainer
seeds torch before calling it, so a model initialised with torch's RNG starts the same on every
rank and every restart. `fetch` must be a pure function of the indices (no hidden state): that is
what makes a resume exact. On a GPU it is called on a host thread, a micro-batch ahead of the loop.
`evaluate` runs on rank 0 after training; with --parallel fsdp on every rank at once (the sharded
model's forward is a collective), so it must run the same forward passes on each.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Workload:
    """A model, an indexable training set, a per-sample loss and an optional evaluation."""

    model: nn.Module
    num_samples: int
    fetch: Callable[[torch.Tensor], Batch]  # sample indices -> (inputs, targets), on the CPU
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # -> one loss per sample
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    # With --parallel fsdp: the module types sharded as units (e.g. a transformer block), which
    # should not nest; empty: each direct child that holds parameters.
    sharding_units: tuple[type[nn.Module], ...] = ()
    # The workload's own optimizer, built from the (by then sharded) parameters; None: AdamW
    # with --lr and --weight-decay. The trainer's warm-up and decay scale its learning rate.
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None


def per_sample_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy without reduction: the loop does its own, exact, summing."""
    return nn.functional.cross_entropy(outputs.float(), targets, reduction="none")


def build_mlp(sizes: list[int]) -> nn.Sequential:
    """Build a ReLU multi-layer perceptron through the given layer widths."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def split_held_out(num: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split range(num) into train and held-out indices with a fixed seed (never the run's)."""
    perm = torch.randperm(num, generator=torch.Generator().manual_seed(12345))
    cut = int(num * (1 - fraction))
    return perm[:cut], perm[cut:]


def build_digits(options: dict[str, str]) -> Workload:
    """scikit-learn's bundled 8x8 digits (no download), a small MLP, held-out accuracy."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 - only this workload needs it

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    train, test = split_held_out(len(y), float(options.get("held_out", "0.2")))
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    hidden = int(options.get("hidden", "128"))

    def evaluate(model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            device = next(model.parameters()).device
            pred = model(x_test.to(device)).argmax(dim=1).cpu()
        return {"accuracy": float((pred == y_test).float().mean())}

    return Workload(
        model=build_mlp([64, hidden, hidden, 10]),
        num_samples=len(y_train),
        fetch=lambda idx: (x_train[idx], y_train[idx]),
        loss=per_sample_cross_entropy,
        evaluate=evaluate,
    )


def build_synthetic(options: dict[str, str]) -> Workload:
    """Random inputs and labels for throughput: an MLP of `dim`, `hidden` x `layers` widths."""
    dim, hidden = int(options.get("dim", "512")), int(options.get("hidden", "2048"))
    layers, samples = int(options.get("layers", "3")), int(options.get("samples", "1048576"))
    gen = torch.Generator().manual_seed(7)
    bank_x = torch.randn(4096, dim, generator=gen)
    bank_y = torch.randint(0, 10, (4096,), generator=gen)
    return Workload(
        model=build_mlp([dim] + [hidden] * layers + [10]),
        num_samples=samples,
        fetch=lambda idx: (bank_x[idx % 4096], bank_y[idx % 4096]),
        loss=per_sample_cross_entropy,
    )


BUILT_IN: dict[str, Callable[[dict[str, str]], Workload]] = {
    "digits": build_digits,
    "synthetic": build_synthetic,
}


def resolve_workload(name: str) -> Callable[[dict[str, str]], Workload]:
    """Return the builder for a built-in name or a `module:function` reference."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise ValueError(
            f"workload {name!r}: expected one of {sorted(BUILT_IN)} or module:function"
        )
    builder = getattr(importlib.import_module(module), attr)
    if not callable(builder):
        raise TypeError(f"workload {name!r} is not callable")
    return builder  # type: ignore[no-any-return]


def parse_options(pairs: list[str]) -> dict[str, str]:
    """Parse repeated key=value options."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"workload option {pair!r}: expected key=value")
        options[key] = value
    return options
