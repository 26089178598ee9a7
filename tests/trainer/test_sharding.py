"""FSDP (--parallel fsdp): units, mesh, staging shards; then real groups of processes that train,
are killed, and resume at other world sizes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor

from ringleader_client.progressfiles import PROGRESS_FILE, read_json
from ringleader_client.resume import data
from ringleader_client.resume.checkpoint import Stager
from ringleader_trainer import sharding
from ringleader_trainer.loop import Runtime, run_step
from ringleader_trainer.options import parse_options
from ringleader_trainer.worker import build_parts
from ringleader_trainer.workloads import Workload, build_digits

from .conftest import Cluster
from .test_training import (
    DIGITS,
    check_kills_resume_bitwise,
    check_resume_at_other_world_sizes,
)

CPU = torch.device("cpu")
FSDP = ["--parallel", "fsdp"]


class Block(nn.Module):
    """A unit type a workload could name."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)


def test_default_units_are_the_direct_children_that_hold_parameters() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    assert sharding.choose_units(model, []) == [model[0], model[2]]


def test_units_of_a_workloads_types_come_innermost_first() -> None:
    inner = Block()
    model = nn.Sequential(Block(), nn.Sequential(inner), nn.Linear(4, 4))
    assert sharding.choose_units(model, [Block]) == [inner, model[0]]


@pytest.mark.parametrize(
    ("world", "local", "hybrid", "shape"),
    [
        (4, 2, True, (2, 2)),  # two pods of two: shard in a pod, replicate across
        (4, 2, False, (4,)),
        (4, 1, True, (4,)),  # one process per pod: nothing to shard inside
        (2, 2, True, (2,)),  # one pod
        (6, 4, True, (6,)),  # pods of unequal size cannot form a grid
    ],
)
def test_the_mesh_is_hybrid_only_with_several_pods_of_several_processes(
    world: int, local: int, hybrid: bool, shape: tuple[int, ...]
) -> None:
    assert sharding.plan_mesh(world, local, hybrid) == shape


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A gloo group of one in this process."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield Runtime(0, 1, 0, CPU, dist.group.WORLD, tmp_path, 2, "pod", "job")  # type: ignore[arg-type]
    dist.destroy_process_group()


def train_steps(rt: Runtime, extra: list[str], steps: int = 3) -> dict[str, torch.Tensor]:
    """Train a few steps of 3 micro-batches; return the full weights."""
    args = ["--workload", "digits", "--global-batch", "96", "--micro-batch", "32", *extra]
    parts = build_parts(parse_options(args), rt)
    perm = data.compute_permutation(parts.workload.num_samples, 0, 0)
    for i in range(steps):
        run_step(parts, data.select_step_indices(perm, i * 96, 96), rt, 32)
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in weights(parts.model)}


def weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The model's state-dict entries, detached."""
    return [(k, v.detach().clone()) for k, v in model.state_dict().items()]


def test_fsdp_with_micro_batches_and_recomputation_trains_as_ddp_does(runtime: Runtime) -> None:
    ddp = train_steps(runtime, [])
    fsdp = train_steps(runtime, FSDP)
    recomputed = train_steps(runtime, [*FSDP, "--activation-checkpointing"])
    ddp_recomputed = train_steps(runtime, ["--activation-checkpointing"])
    assert ddp.keys() == fsdp.keys() == recomputed.keys()  # the unwrapped model's names
    for name, tensor in ddp.items():
        assert torch.equal(ddp_recomputed[name], tensor), f"{name}: recomputation changed it"
        torch.testing.assert_close(fsdp[name], tensor, rtol=1e-5, atol=1e-6)
        assert torch.equal(recomputed[name], fsdp[name]), f"{name}: recomputation changed it"


def build_digits_with_sgd(options: dict[str, str]) -> Workload:
    """digits, bringing its own optimizer."""
    workload = build_digits(options)
    workload.optimizer = lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)
    return workload


def test_a_workload_brings_its_own_optimizer_over_the_sharded_parameters(
    runtime: Runtime,
) -> None:
    workload = f"{__name__}:build_digits_with_sgd"
    parts = build_parts(parse_options(["--workload", workload, *FSDP]), runtime)
    assert isinstance(parts.optim, torch.optim.SGD)
    params = parts.optim.param_groups[0]["params"]
    assert params and all(isinstance(p, DTensor) for p in params)


def test_a_staged_shard_is_a_cpu_copy_with_the_shards_layout(runtime: Runtime) -> None:
    parts = build_parts(parse_options(["--workload", "digits", *FSDP]), runtime)
    param = parts.model.state_dict()["0.weight"]
    assert isinstance(param, DTensor)
    staged = Stager().stage_all({"w": param})["w"]
    assert isinstance(staged, DTensor) and staged.placements == param.placements
    with torch.no_grad():
        param.to_local().add_(1.0)  # the next step changes the weights while a save writes
    assert torch.equal(staged.to_local() + 1.0, param.to_local())


@pytest.mark.parametrize(
    ("pods", "nproc", "extra"),
    [(2, 1, []), (2, 2, ["--activation-checkpointing"])],
    ids=["2-ranks", "4-ranks-hybrid-recomputed"],
)
def test_fsdp_trains_digits_to_95_percent(
    cluster: Cluster, pods: int, nproc: int, extra: list[str]
) -> None:
    (pod, *_) = cluster.run_job(pods, [*DIGITS, *FSDP, *extra, "--epochs", "15"], nproc=nproc)
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["world_size"] == pods * nproc
    assert progress["state"] == "Finished" and progress["eval"]["accuracy"] >= 0.95
    mesh = "(2, 2) (replicate, shard)" if nproc > 1 else "(2,) (shard)"
    assert f"FSDP over a mesh of {mesh}" in pod.output()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fsdp_trains_on_the_gpu_in_bf16_with_recomputation(cluster: Cluster) -> None:
    args = [*DIGITS, *FSDP, "--activation-checkpointing", "--epochs", "15"]
    (pod,) = cluster.run_job(1, args, nproc=torch.cuda.device_count())
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["eval"]["accuracy"] >= 0.95
    assert "(backend nccl," in pod.output() and "FSDP over a mesh" in pod.output()


def test_fsdp_killed_three_times_resumes_to_bitwise_identical_weights(
    cluster: Cluster, tmp_path: Path
) -> None:
    check_kills_resume_bitwise(cluster, tmp_path, [*DIGITS, *FSDP, "--epochs", "4"], range(8, 70))


def test_fsdp_resumed_at_other_world_sizes_reshards_and_sees_every_sample_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    # One epoch of 23 steps, paced to 0.1 s each: each stop leaves the phase steps to spare.
    phases = ((4, 5), (2, 12), (3, None))
    check_resume_at_other_world_sizes(
        cluster, tmp_path, [*DIGITS, *FSDP], epochs=1, phases=phases, pace=0.1
    )
    out = "".join(p.output() for p in cluster.pods)
    assert "(saved by 4 ranks, now 2)" in out and "(saved by 2 ranks, now 3)" in out
