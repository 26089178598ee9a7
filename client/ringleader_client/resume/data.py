"""Deterministic data order: a seeded permutation per epoch and a cursor of samples consumed.

A step takes the next `global_batch` indices of the epoch's permutation from the cursor; rank r of
W takes every W-th of them (starting at r) and splits its share into micro-batches. Nothing depends
on the world size except the split, so a resume at any world size continues with exactly the
samples not yet seen in the epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Position:
    """Where training stands: the epoch and the samples of it already consumed."""

    epoch: int
    cursor: int


def compute_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """Return the epoch's permutation of range(num_samples); the same on every rank and start."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=gen)


def compute_steps_per_epoch(num_samples: int, global_batch: int) -> int:
    """Count steps in one epoch; the last step takes the remainder."""
    return math.ceil(num_samples / global_batch)


def select_step_indices(perm: torch.Tensor, cursor: int, global_batch: int) -> torch.Tensor:
    """Return the sample indices of the step that starts at cursor."""
    return perm[cursor : cursor + global_batch]


class DataOrder:
    """The sample indices of each step, from each epoch's permutation made once.

    The loop asks for the step after the current one too (to fetch it ahead), which at an
    epoch's end is the next epoch's first: so two epochs' orders are kept, never more."""

    def __init__(self, num_samples: int, seed: int, global_batch: int) -> None:
        self.num_samples, self.seed, self.global_batch = num_samples, seed, global_batch
        self._perms: dict[int, torch.Tensor] = {}

    def step_at(self, position: Position) -> torch.Tensor:
        """The indices of the step that starts at position."""
        epoch = position.epoch
        if epoch not in self._perms:
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            self._perms[epoch] = compute_permutation(self.num_samples, self.seed, epoch)
        return select_step_indices(self._perms[epoch], position.cursor, self.global_batch)


def shard_indices(step_indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Return rank's share of a step: every world_size-th index, starting at rank."""
    return step_indices[rank::world_size]


def split_micro_batches(share: torch.Tensor, micro_batch: int) -> list[torch.Tensor]:
    """Split a rank's share into micro-batches; always at least one, possibly empty."""
    # Every rank must run the same single synchronised backward, even with nothing to train on.
    if share.numel() == 0:
        return [share]
    return list(torch.split(share, micro_batch))


def compute_loss_scale(step_samples: int, world_size: int) -> float:
    """Return the factor on a rank's summed per-sample losses so DDP's mean gives the step mean."""
    # DDP averages gradients over ranks; per-sample losses summed x W / n give sum/n overall,
    # however unevenly the n samples are spread across ranks and micro-batches.
    return world_size / step_samples


def advance(position: Position, consumed: int, num_samples: int) -> Position:
    """Return the position after a step consumed `consumed` samples."""
    cursor = position.cursor + consumed
    if cursor > num_samples:
        raise ValueError(f"cursor {cursor} past the epoch's {num_samples} samples")
    if cursor == num_samples:
        return Position(position.epoch + 1, 0)
    return Position(position.epoch, cursor)
