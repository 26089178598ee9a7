"""Cursor, permutation, sharding and accumulation arithmetic."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ringleader_client.resume import data


def test_the_permutation_depends_only_on_seed_and_epoch() -> None:
    a = data.compute_permutation(100, seed=3, epoch=2)
    assert torch.equal(a, data.compute_permutation(100, seed=3, epoch=2))
    assert not torch.equal(a, data.compute_permutation(100, seed=3, epoch=3))
    assert not torch.equal(a, data.compute_permutation(100, seed=4, epoch=2))
    assert sorted(a.tolist()) == list(range(100))


def test_the_data_order_gives_each_epochs_steps_and_keeps_two_epochs_at_most() -> None:
    order = data.DataOrder(10, seed=5, global_batch=4)
    perm1 = data.compute_permutation(10, 5, 1)
    assert torch.equal(order.step_at(data.Position(0, 8)), data.compute_permutation(10, 5, 0)[8:])
    # Asked ahead at epoch 0's last step, then again as the current step: the same order.
    assert torch.equal(order.step_at(data.Position(1, 0)), perm1[:4])
    assert torch.equal(order.step_at(data.Position(1, 4)), perm1[4:8])
    order.step_at(data.Position(2, 0))
    order.step_at(data.Position(3, 0))
    assert sorted(order._perms) == [2, 3]  # older orders are dropped


def consume_epoch(n: int, batch: int, worlds: list[int], micro: int) -> Counter[int]:
    """Walk one epoch, switching world size at every step in turn; count samples trained on."""
    perm, pos, seen, i = data.compute_permutation(n, 0, 0), data.Position(0, 0), Counter[int](), 0
    while pos.epoch == 0:
        world = worlds[i % len(worlds)]
        step = data.select_step_indices(perm, pos.cursor, batch)
        for rank in range(world):
            for mb in data.split_micro_batches(data.shard_indices(step, rank, world), micro):
                assert mb.numel() <= micro
                seen.update(mb.tolist())
        pos, i = data.advance(pos, step.numel(), n), i + 1
    assert i == data.compute_steps_per_epoch(n, batch)
    return seen


@pytest.mark.parametrize(
    ("n", "batch", "worlds", "micro"),
    [
        (100, 10, [1], 10),
        (100, 10, [4, 2, 3], 2),
        (101, 16, [3], 4),  # a ragged last step
        (7, 8, [4, 5], 1),  # one step, some ranks get nothing
        (1437, 64, [2, 4, 3, 1], 5),
    ],
)
def test_every_sample_is_consumed_exactly_once_per_epoch_at_any_world_size(
    n: int, batch: int, worlds: list[int], micro: int
) -> None:
    seen = consume_epoch(n, batch, worlds, micro)
    assert sorted(seen) == list(range(n))
    assert set(seen.values()) == {1}


@pytest.mark.parametrize(
    ("share", "micro", "sizes"),
    [(10, 4, [4, 4, 2]), (8, 8, [8]), (3, 5, [3]), (0, 4, [0])],
)
def test_micro_batches_split_a_share_and_never_vanish(
    share: int, micro: int, sizes: list[int]
) -> None:
    got = data.split_micro_batches(torch.arange(share), micro)
    assert [b.numel() for b in got] == sizes


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
def test_loss_scaling_makes_the_ddp_mean_equal_the_step_mean(world: int) -> None:
    losses = torch.arange(1.0, 12.0)  # 11 samples, spread unevenly across ranks
    n = losses.numel()
    scale = data.compute_loss_scale(n, world)
    per_rank = [data.shard_indices(losses, r, world).sum() * scale for r in range(world)]
    ddp_mean = sum(per_rank) / world  # what DDP's averaging all-reduce produces
    assert torch.isclose(torch.as_tensor(ddp_mean), losses.mean())


@pytest.mark.parametrize(
    ("pos", "consumed", "n", "after"),
    [
        (data.Position(0, 0), 10, 30, data.Position(0, 10)),
        (data.Position(0, 20), 10, 30, data.Position(1, 0)),
        (data.Position(2, 28), 2, 30, data.Position(3, 0)),
    ],
)
def test_advance_moves_the_cursor_and_rolls_over_epochs(
    pos: data.Position, consumed: int, n: int, after: data.Position
) -> None:
    assert data.advance(pos, consumed, n) == after


def test_advance_refuses_to_run_past_the_epoch() -> None:
    with pytest.raises(ValueError):
        data.advance(data.Position(0, 25), 10, 30)
