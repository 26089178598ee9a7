"""Micro-batches fetched ahead: the same batches, the same training, fetched once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ringleader_client.resume import data
from ringleader_trainer.feeder import BatchFeeder
from ringleader_trainer.loop import Runtime, run_step
from ringleader_trainer.options import parse_options
from ringleader_trainer.worker import build_parts
from ringleader_trainer.workloads import Batch, Workload, build_synthetic

from .conftest import wait_until

CPU = torch.device("cpu")


class CountingWorkload(Workload):
    """The synthetic workload, counting which indices were fetched."""

    def __init__(self) -> None:
        base = build_synthetic({"dim": "4", "hidden": "8", "layers": "1", "samples": "64"})
        super().__init__(base.model, base.num_samples, self._fetch, base.loss)
        self._base_fetch = base.fetch
        self.fetched: list[list[int]] = []

    def _fetch(self, indices: torch.Tensor) -> Batch:
        if (indices < 0).any():
            raise IndexError("negative sample index")
        self.fetched.append(indices.tolist())
        return self._base_fetch(indices)


def assert_same_batch(a: Batch, b: Batch) -> None:
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_batch_fetched_ahead_is_the_one_taken_and_fetched_once() -> None:
    workload = CountingWorkload()
    feeder = BatchFeeder(workload, CPU, ahead=True)
    idx = torch.tensor([5, 3, 9])
    feeder.fetch_ahead(idx)
    batch = feeder.take(idx)
    assert workload.fetched == [[5, 3, 9]]
    assert_same_batch(batch, workload.fetch(idx))


def test_a_batch_fetched_ahead_for_other_indices_is_not_used() -> None:
    workload = CountingWorkload()
    feeder = BatchFeeder(workload, CPU, ahead=True)
    feeder.fetch_ahead(torch.tensor([1, 2]))
    batch = feeder.take(torch.tensor([7, 8]))
    assert_same_batch(batch, workload.fetch(torch.tensor([7, 8])))
    feeder.take(torch.tensor([1, 2]))  # what was ahead was dropped: fetched again
    # The dropped fetch may still be running on the host thread: the count reaches 2 once it ends.
    wait_until(lambda: workload.fetched.count([1, 2]) == 2, 10, "both fetches of [1, 2]")
    assert workload.fetched.count([1, 2]) == 2


def test_a_fetch_that_fails_ahead_fails_the_take() -> None:
    feeder = BatchFeeder(CountingWorkload(), CPU, ahead=True)
    feeder.fetch_ahead(torch.tensor([-1]))
    with pytest.raises(IndexError, match="negative sample index"):
        feeder.take(torch.tensor([-1]))


def test_on_the_cpu_nothing_is_fetched_ahead() -> None:
    workload = CountingWorkload()
    feeder = BatchFeeder(workload, CPU)
    feeder.fetch_ahead(torch.tensor([4]))
    assert workload.fetched == []
    feeder.take(torch.tensor([4]))
    assert workload.fetched == [[4]]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A gloo group of one in this process."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield Runtime(0, 1, 0, CPU, dist.group.WORLD, tmp_path, 2, "pod", "job")  # type: ignore[arg-type]
    dist.destroy_process_group()


def train_steps(rt: Runtime, ahead: bool, steps: int = 4) -> tuple[list[torch.Tensor], int]:
    """Train a few steps of 3 micro-batches, fetching ahead when `ahead`; return the weights
    and how many fetches were made."""
    opts = parse_options(["--workload", "digits", "--global-batch", "96", "--micro-batch", "32"])
    parts = build_parts(opts, rt)
    fetches, fetch = [0], parts.workload.fetch

    def counted(indices: torch.Tensor) -> Batch:
        fetches[0] += 1
        return fetch(indices)

    parts.workload.fetch = counted
    parts.feeder = BatchFeeder(parts.workload, rt.device, ahead=ahead)
    perm = data.compute_permutation(parts.workload.num_samples, 0, 0)
    for i in range(steps):
        indices, following = (data.select_step_indices(perm, j * 96, 96) for j in (i, i + 1))
        run_step(parts, indices, rt, 32, following)
    return [p.detach().clone() for p in parts.model.parameters()], fetches[0]


def test_training_with_batches_fetched_ahead_is_bitwise_the_same(runtime: Runtime) -> None:
    (on_demand, fetched), (ahead, fetched_ahead) = (train_steps(runtime, a) for a in (False, True))
    assert len(on_demand) == len(ahead) > 0
    assert all(torch.equal(a, b) for a, b in zip(on_demand, ahead, strict=True))
    # Every micro-batch was taken from what was fetched ahead, except the very first; the
    # step after the last one had its first micro-batch fetched ahead too.
    assert (fetched, fetched_ahead) == (4 * 3, 4 * 3 + 1)
