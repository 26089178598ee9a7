"""Every worker's figures: each rank's step split into data, compute and communication wait,
its throughput and memory peak, gathered with the step's agreement, told by rank 0's progress
and by each pod's own /metrics. Real processes, gloo on the CPU, one rank slowed on purpose."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from ringleader_client import contract as k
from ringleader_client.endpoint import render_metrics
from ringleader_client.progressfiles import PROGRESS_FILE, heartbeat_path, read_json
from ringleader_trainer import workerfigures
from ringleader_trainer.steptimes import StepTimer

from .conftest import Cluster

SLOW = 0.08  # seconds the slowed rank computes longer per step


@pytest.mark.parametrize(
    "parallel",
    [["ddp"], ["fsdp", "--no-hybrid-sharding"], ["fsdp"]],
    ids=["ddp", "fsdp", "fsdp-hybrid"],
)
def test_a_slowed_rank_computes_longer_and_the_others_wait_for_it(
    cluster: Cluster, parallel: list[str]
) -> None:
    args = ["--workload", "digits", "--global-batch", "64", "--epochs", "1"]
    args += ["--parallel", *parallel]
    args += ["--debug-slow-rank", "3", "--debug-slow-seconds", str(SLOW)]
    cluster.run_job(2, args, nproc=2)
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None
    workers = progress[k.WORKERS]
    ranks = {r[k.RANK_INDEX]: r for r in workers[k.RANKS]}
    assert sorted(ranks) == [0, 1, 2, 3]
    assert workers[k.WINDOW_STEPS] == workerfigures.WINDOW_STEPS
    slow = ranks.pop(3)
    assert slow[k.COMPUTE_SECONDS] >= SLOW
    for rank, figures in ranks.items():
        # The others finish their share sooner and wait for rank 3: in DDP's gradient exchange,
        # in FSDP's all-gathers and reduce-scatters (and, hybrid, the all-reduce across pods).
        assert figures[k.COMPUTE_SECONDS] < slow[k.COMPUTE_SECONDS] - SLOW / 2, rank
        assert figures[k.COMMUNICATION_SECONDS] > SLOW / 2, rank
        assert set(figures) == k.RANK_KEYS
    for figures in [slow, *ranks.values()]:
        parts = (k.DATA_SECONDS, k.COMPUTE_SECONDS, k.COMMUNICATION_SECONDS)
        assert figures[k.STEP_SECONDS] == pytest.approx(sum(figures[p] for p in parts), abs=1e-5)
        assert figures[k.MEMORY_PEAK_BYTES] > 50 * 2**20  # a python process with torch in it
        assert figures[k.SAMPLES_PER_SECOND] > 0
    assert workers[k.MEDIAN_WORK_SECONDS] < slow[k.COMPUTE_SECONDS] + slow[k.DATA_SECONDS]


def test_each_pod_exports_its_own_ranks_figures(cluster: Cluster) -> None:
    args = ["--workload", "digits", "--global-batch", "64", "--epochs", "1"]
    cluster.run_job(2, args, nproc=2)
    seen: dict[int, str] = {}
    for pod in ("pod-0", "pod-1"):
        beat = read_json(heartbeat_path(cluster.ckpt, pod)) or {}
        own = beat[k.RANKS]
        assert len(own) == 2 and {r[k.RANK_POD] for r in own} == {pod}
        text = render_metrics(cluster.ckpt, pod)
        for r in own:
            rank = r[k.RANK_INDEX]
            seen[rank] = pod
            for part in ("data", "compute", "communication"):
                assert f'rank_step_seconds{{rank="{rank}",part="{part}"}}' in text
            assert f'ringleader_trainer_rank_memory_peak_bytes{{rank="{rank}"}}' in text
    assert sorted(seen) == [0, 1, 2, 3]  # every rank exported once, by its own pod


def test_the_wait_after_the_last_local_gradient_is_communication() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    timer = StepTimer(torch.device("cpu"))
    timer.watch_gradients(model)
    timer.start()
    with timer.fetching():
        time.sleep(0.05)
        x = torch.randn(4, 8)
    with timer.backward(syncing=True):
        model(x).sum().backward()
        time.sleep(0.1)  # as DDP's backward waits for the last bucket's all-reduce
    timer.agreed(0.02)
    times = timer.finish()
    assert times.data == pytest.approx(0.05, abs=0.03)
    assert times.communication == pytest.approx(0.12, abs=0.03)
    assert times.compute < 0.05


def test_a_backward_that_does_not_sync_is_all_compute() -> None:
    model = nn.Linear(8, 1)
    timer = StepTimer(torch.device("cpu"))
    timer.watch_gradients(model)
    timer.start()
    model(torch.randn(4, 8)).sum().backward()
    time.sleep(0.05)
    times = timer.finish()
    assert times.communication == 0.0
    assert times.compute >= 0.05


def rows(*ranks: tuple[float, float, float, int, int]) -> torch.Tensor:
    """One step's gathered rows: (data, compute, communication, samples, memory) per rank."""
    return torch.tensor([[0.0, 0.0, *r] for r in ranks], dtype=torch.float64)


def test_the_window_averages_each_ranks_parts_and_keeps_its_memory_peak() -> None:
    window = workerfigures.Window(["a", "b"], steps=2)
    window.add(rows((0.1, 0.5, 0.0, 10, 100), (0.0, 0.2, 0.4, 10, 300)))
    window.add(rows((0.1, 0.7, 0.0, 10, 200), (0.0, 0.2, 0.6, 10, 200)))
    a, b = window.figures()
    assert (a.rank, a.pod, b.pod) == (0, "a", "b")
    assert (a.data, a.compute, a.communication) == pytest.approx((0.1, 0.6, 0.0))
    assert a.samples_per_second == pytest.approx(20 / 1.4)
    assert (a.memory_peak_bytes, b.memory_peak_bytes) == (200, 300)
    window.add(rows((0.0, 0.1, 0.0, 10, 50), (0.0, 0.1, 0.0, 10, 50)))  # the first step drops out
    assert window.figures()[1].memory_peak_bytes == 200


def test_the_loss_and_the_stop_are_agreed_from_every_rows() -> None:
    gathered = rows((0, 0, 0, 0, 0), (0, 0, 0, 0, 0))
    gathered[:, 0] = torch.tensor([1.5, 2.5], dtype=torch.float64)
    gathered[1, 1] = 1.0
    assert workerfigures.agree(gathered) == (4.0, True)


def test_the_progress_document_shows_the_slowest_ranks_when_there_are_many() -> None:
    n = workerfigures.MAX_RANKS_REPORTED + 10
    window = workerfigures.Window([f"p{i}" for i in range(n)])
    window.add(rows(*[(0.0, 1.0 + (i == 70), 0.0, 1, 1) for i in range(n)]))
    doc = workerfigures.progress_document(window.figures(), len(window))
    assert doc is not None
    shown = [r[k.RANK_INDEX] for r in doc[k.RANKS]]
    assert len(shown) == workerfigures.MAX_RANKS_REPORTED and 70 in shown
    assert shown == sorted(shown)
    assert doc[k.MEDIAN_WORK_SECONDS] == 1.0
    assert workerfigures.progress_document([], 0) is None


def test_a_group_asked_for_a_preflight_measures_its_network_before_training(
    cluster: Cluster,
) -> None:
    args = ["--workload", "digits", "--global-batch", "64", "--epochs", "1"]
    cluster.run_job(2, args, nproc=2, env={k.PREFLIGHT_MEGABYTES_NAME: "2"})
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None
    found = progress[k.PREFLIGHT]
    assert set(found) == k.PREFLIGHT_KEYS
    assert found[k.PREFLIGHT_MEGABYTES] == 2 and found[k.PREFLIGHT_BUS_GBPS] > 0
    links = found[k.PREFLIGHT_LINKS]
    # A ring through 4 ranks: every rank received from the one before it.
    assert sorted((link[k.LINK_FROM_RANK], link[k.LINK_TO_RANK]) for link in links) == [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 0),
    ]
    assert all(set(link) == k.LINK_KEYS and link[k.LINK_GBPS] > 0 for link in links)
    pods = {link[k.LINK_TO_RANK]: link[k.LINK_TO] for link in links}
    in_pod = [link for link in links if link[k.LINK_FROM] == link[k.LINK_TO]]
    assert len(in_pod) == 2 and sorted(pods.values()) == ["pod-0", "pod-0", "pod-1", "pod-1"]
    assert found[k.PREFLIGHT_MEDIAN_IN_POD_GBPS] > 0
    assert found[k.PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS] > 0
    assert "pre-flight: all-reduce bus bandwidth" in "".join(p.output() for p in cluster.pods)


def test_without_a_preflight_nothing_is_measured(cluster: Cluster) -> None:
    cluster.run_job(2, ["--workload", "digits", "--global-batch", "64", "--epochs", "1"])
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and k.PREFLIGHT not in progress
