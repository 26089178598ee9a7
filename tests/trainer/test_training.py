"""Real training: launchers as pods, c10d rendezvous in its own process, gloo on the CPU."""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest
import torch

from ringleader_client.progressfiles import PROGRESS_FILE, read_json
from ringleader_trainer.report import FINAL_MODEL

from .conftest import Cluster, Pod, wait_until

DIGITS = ["--workload", "digits", "--global-batch", "64", "--seed", "1"]


def final_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """Load the weights rank 0 wrote at the end of training."""
    return torch.load(ckpt / FINAL_MODEL)  # type: ignore[no-any-return]


def read_traces(trace_dir: Path) -> list[dict[str, object]]:
    """Return every rank's per-step trace lines."""
    lines = []
    for path in trace_dir.glob("trace-*.jsonl"):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


@pytest.mark.parametrize(("pods", "nproc"), [(2, 1), (2, 2)])
def test_digits_reaches_95_percent_held_out_accuracy(
    cluster: Cluster, pods: int, nproc: int
) -> None:
    cluster.run_job(pods, [*DIGITS, "--epochs", "15"], nproc=nproc)
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None
    assert progress["world_size"] == pods * nproc
    assert progress["state"] == "Finished"
    assert progress["eval"]["accuracy"] >= 0.95
    assert progress["checkpoint"]["step"] == progress["step"]


def kill_worker_at(pod: Pod, step: int, not_pid: object) -> int:
    """Wait for the pod's worker to pass step, then kill -9 it; return its pid."""

    def passed() -> bool:
        beat = pod.heartbeat()
        return beat.get("pid") != not_pid and int(beat.get("step", -1)) >= step

    wait_until(passed, 120, f"{pod.name} to reach step {step}")
    pid = int(pod.heartbeat()["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_kill_9_at_random_steps_resumes_to_bitwise_identical_weights(
    cluster: Cluster, tmp_path: Path
) -> None:
    check_kills_resume_bitwise(cluster, tmp_path, [*DIGITS, "--epochs", "8"], range(10, 170))


def check_kills_resume_bitwise(
    cluster: Cluster, tmp_path: Path, args: list[str], kill_steps: range
) -> None:
    """Run the job of 2 pods once uninterrupted, once with a worker killed (-9) at 3 random
    steps of kill_steps, alternating pods; check the final weights are bitwise equal."""
    args = [*args, "--checkpoint-every", "7", "--heartbeat-interval", "0"]
    args += ["--min-step-seconds", "0.03"]
    cluster.ckpt = tmp_path / "reference"
    cluster.run_job(2, args, rdzv_id="reference")
    reference = final_weights(cluster.ckpt)

    cluster.ckpt = tmp_path / "killed"
    pods = [
        cluster.start_pod(f"pod-{i}", "2:2", args, rdzv_id="killed", max_restarts=6) for i in (0, 1)
    ]
    targets = sorted(random.Random().sample(kill_steps, 3))
    killed: object = None
    for n, target in enumerate(targets):
        killed = kill_worker_at(pods[n % 2], target, killed)
    for pod in pods:
        assert pod.wait() == 0, pod.output()[-3000:]
    resumes = pods[0].output().count("resumed from")
    assert resumes >= 3, f"kills at {targets}: only {resumes} resumes"
    got = final_weights(cluster.ckpt)
    assert got.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(got[name], tensor), f"{name} differs after kills at steps {targets}"


def test_a_pod_whose_workers_failed_leaves_the_rendezvous_open_for_its_replacement(
    cluster: Cluster,
) -> None:
    args = [*DIGITS, "--epochs", "3", "--checkpoint-every", "5", "--heartbeat-interval", "0"]
    args += ["--min-step-seconds", "0.05"]
    survivor = cluster.start_pod("pod-0", "2:2", args, rdzv_id="open", max_restarts=3)
    failing = cluster.start_pod("pod-1", "2:2", args, rdzv_id="open", max_restarts=0)
    kill_worker_at(failing, 12, None)  # after the checkpoint of step 10
    assert failing.wait() != 0  # no restarts left: its agent gives up, as a failed pod does
    # torch's agent would have closed the rendezvous for good: no replacement could join.
    replacement = cluster.start_pod("pod-2", "2:2", args, rdzv_id="open")
    for pod in (survivor, replacement):
        assert pod.wait() == 0, pod.output()[-3000:]
    assert "resumed from" in replacement.output()


def stop_all_at(pods: list[Pod], step: int) -> None:
    """Wait for the job to pass step, SIGTERM every pod, and check each stops cleanly."""
    try:
        wait_until(lambda: int(pods[0].heartbeat().get("step", -1)) >= step, 120, f"step {step}")
    except AssertionError:
        raise AssertionError("\n".join(p.output()[-2000:] for p in pods)) from None
    for pod in pods:
        pod.proc.send_signal(signal.SIGTERM)
    for pod in pods:
        assert pod.wait() == 0, pod.output()[-3000:]
        assert "stopped on SIGTERM; checkpoint committed" in pod.output()


def run_phase(cluster: Cluster, size: int, args: list[str], stop_at: int | None) -> None:
    """Run the job at one world size, then stop it at a step (or let it finish)."""
    rdzv = f"size-{size}"
    pods = [
        cluster.start_pod(f"p{size}-{i}", f"{size}:{size}", args, rdzv_id=rdzv) for i in range(size)
    ]
    if stop_at is None:
        for pod in pods:
            assert pod.wait() == 0, pod.output()[-3000:]
    else:
        stop_all_at(pods, stop_at)


def test_resume_at_other_world_sizes_sees_every_sample_once_with_a_continuous_loss(
    cluster: Cluster, tmp_path: Path
) -> None:
    phases = ((4, 8), (2, 30), (3, None))
    check_resume_at_other_world_sizes(cluster, tmp_path, DIGITS, epochs=2, phases=phases, pace=0.05)


def check_resume_at_other_world_sizes(
    cluster: Cluster,
    tmp_path: Path,
    args: list[str],
    *,
    epochs: int,
    phases: tuple[tuple[int, int | None], ...],
    pace: float,
) -> None:
    """Run the job at each (world size, stop at step) in turn, each resuming the last; check
    every sample of each epoch is trained once and the loss follows a 1-rank run's."""
    common = [*args, "--epochs", str(epochs), "--checkpoint-every", "1000"]
    common += ["--heartbeat-interval", "0"]
    cluster.ckpt = tmp_path / "reference"
    cluster.run_job(1, [*common, "--trace-dir", str(tmp_path / "ref-trace")], rdzv_id="ref")
    ref_loss = {t["step"]: t["loss"] for t in read_traces(tmp_path / "ref-trace")}

    cluster.ckpt = tmp_path / "elastic"
    common += ["--trace-dir", str(tmp_path / "trace"), "--min-step-seconds", str(pace)]
    for size, stop_at in phases:
        run_phase(cluster, size, common, stop_at)

    traces = read_traces(tmp_path / "trace")
    assert {t["world_size"] for t in traces} == {size for size, _ in phases}
    for epoch in range(epochs):
        seen = Counter(s for t in traces if t["epoch"] == epoch for s in t["samples"])  # type: ignore[attr-defined]
        assert sorted(seen) == list(range(1437)) and set(seen.values()) == {1}
    rank0 = [t for t in traces if t["rank"] == 0]
    loss = {t["step"]: t["loss"] for t in rank0}
    assert len(loss) == len(rank0), "a step was trained twice"
    assert loss.keys() == ref_loss.keys()
    for step, value in loss.items():
        assert value == pytest.approx(ref_loss[step], rel=1e-3, abs=1e-4), f"jump at step {step}"


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_previous_one(cluster: Cluster) -> None:
    first = [*DIGITS, "--epochs", "1", "--checkpoint-every", "10"]
    cluster.run_job(1, first, rdzv_id="first")
    newest = cluster.ckpt / "step_000000023"  # 1437 samples / 64 = 23 steps
    shard = next(newest.glob("*.distcp"))
    body = bytearray(shard.read_bytes())
    body[len(body) // 2] ^= 0xFF
    shard.write_bytes(bytes(body))

    (pod,) = cluster.run_job(
        1, [*DIGITS, "--epochs", "2", "--checkpoint-every", "10"], rdzv_id="second"
    )
    out = pod.output()
    assert "skipping checkpoint step 23" in out and "fails its CRC-32 check" in out
    assert "step_000000020 at step 20" in out
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["step"] == 46 and progress["state"] == "Finished"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nccl_path_trains_on_the_gpu(cluster: Cluster) -> None:
    (pod,) = cluster.run_job(1, [*DIGITS, "--epochs", "15"], nproc=torch.cuda.device_count())
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["eval"]["accuracy"] >= 0.95
    assert "(backend nccl," in pod.output()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_job_resumes_from_its_checkpoint(cluster: Cluster) -> None:
    # Saves stage the CUDA state through pinned host buffers; loading puts it back on the GPU.
    cluster.run_job(1, [*DIGITS, "--epochs", "1", "--checkpoint-every", "10"], rdzv_id="first")
    second = [*DIGITS, "--epochs", "2", "--checkpoint-every", "10"]
    (pod,) = cluster.run_job(1, second, rdzv_id="second")
    assert "step_000000023 at step 23" in pod.output()
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["step"] == 46 and progress["state"] == "Finished"


def test_a_checkpoint_that_does_not_fit_the_model_stops_the_job_with_a_user_error(
    cluster: Cluster,
) -> None:
    cluster.run_job(1, [*DIGITS, "--epochs", "1", "--checkpoint-every", "10"], rdzv_id="first")
    narrower = [*DIGITS, "--epochs", "2", "--workload-option", "hidden=64"]
    pod = cluster.start_pod("changed", "1:1", narrower, rdzv_id="second")
    assert pod.wait() == 1
    # The whole checkpoint is not skipped for an older one, nor is training started over.
    out = pod.output()
    assert "step_000000023 failed on rank 0: ValueError: Size mismatch" in out, out[-3000:]
    assert '"failureClass": "UserError"' in out and "did the model or optimizer change" in out
    progress = read_json(cluster.ckpt / PROGRESS_FILE)
    assert progress is not None and progress["step"] == 23  # nothing trained since
