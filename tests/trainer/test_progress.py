"""The launcher's progress endpoint serves what rank 0 and the pod's workers wrote."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest
import torch

from ringleader_client import termination
from ringleader_client.contract import TrainerState
from ringleader_client.endpoint import serve_progress
from ringleader_client.progressfiles import (
    PROGRESS_FILE,
    Throttle,
    heartbeat_path,
    read_json,
    write_json_atomic,
)
from ringleader_client.resume import data
from ringleader_trainer.loop import Runtime
from ringleader_trainer.options import parse_options
from ringleader_trainer.report import Reporter

from .conftest import pick_free_port


def fetch(port: int, path: str) -> tuple[int, str]:
    """GET a path from the progress server."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_progress_and_metrics_are_served_from_the_shared_files(tmp_path: Path) -> None:
    port = pick_free_port()
    server = serve_progress(tmp_path, "pod-1", port)
    try:
        assert fetch(port, "/progress")[0] == 404
        progress = {
            "step": 42,
            "epoch": 1,
            "loss": 0.25,
            "samples_per_second": 900.0,
            "updated_at": 1000.0,
            "checkpoint": {"step": 40, "path": "/c/s", "time": 99.0},
        }
        write_json_atomic(tmp_path / PROGRESS_FILE, progress)
        write_json_atomic(heartbeat_path(tmp_path, "pod-1"), {"step": 41, "time": 998.0})
        status, body = fetch(port, "/progress")
        assert status == 200 and json.loads(body) == progress
        status, metrics = fetch(port, "/metrics")
        assert status == 200
        assert "ringleader_trainer_step 42.0" in metrics
        assert "ringleader_trainer_checkpoint_step 40.0" in metrics
        assert "ringleader_trainer_heartbeat_step 41.0" in metrics
        assert "ringleader_trainer_loss 0.25" in metrics
        write_json_atomic(heartbeat_path(tmp_path, "pod-2"), {"step": 39, "time": 990.0})
        status, body = fetch(port, "/heartbeats")  # every pod's, from the shared volume
        assert status == 200
        assert json.loads(body) == {
            "pod-1": {"step": 41, "time": 998.0},
            "pod-2": {"step": 39, "time": 990.0},
        }
    finally:
        server.shutdown()


def test_an_announced_state_is_written_at_once_whatever_the_interval(tmp_path: Path) -> None:
    """The operator must see Finishing before a long final checkpoint, not a minute later."""
    rt = Runtime(0, 1, 0, torch.device("cpu"), cast(Any, None), tmp_path, 2, "pod-0", "job")
    reporter = Reporter(rt, parse_options(["--progress-interval", "3600"]), num_samples=100)
    reporter.report(7, data.Position(0, 70), 0.5, samples=10, newest=None)  # the first is written
    reporter.report(8, data.Position(0, 80), 0.4, samples=10, newest=None)  # too soon: not written
    assert (read_json(tmp_path / PROGRESS_FILE) or {}).get("step") == 7
    reporter.announce(8, data.Position(0, 80), None, TrainerState.FINISHING)
    progress = read_json(tmp_path / PROGRESS_FILE) or {}
    beat = read_json(heartbeat_path(tmp_path, "pod-0")) or {}
    assert (progress.get("step"), progress.get("state")) == (8, "Finishing")
    assert (beat.get("step"), beat.get("state")) == (8, "Finishing")


def test_each_process_traces_to_a_file_of_its_own_even_with_the_same_pid(tmp_path: Path) -> None:
    """In a container every incarnation of a pod runs with the same small pids: a restarted
    process must not append to its predecessor's trace (recovery benches read each file's first
    step as a process's start)."""
    rt = Runtime(0, 1, 0, torch.device("cpu"), cast(Any, None), tmp_path, 2, "pod-0", "job")
    options = parse_options(["--progress-interval", "3600", "--trace-dir", str(tmp_path / "t")])
    for step in (1, 2):  # two incarnations, here in one process: one pid
        reporter = Reporter(rt, options, num_samples=100)
        reporter.trace(step, data.Position(0, step), torch.arange(4), loss=0.5)
    traces = sorted(tmp_path.glob("t/trace-*.jsonl"))
    assert len(traces) == 2
    assert sorted(json.loads(p.read_text())["step"] for p in traces) == [1, 2]


@pytest.mark.parametrize(("interval", "second_call"), [(0.0, True), (3600.0, False)])
def test_throttle_allows_one_write_per_interval(interval: float, second_call: bool) -> None:
    throttle = Throttle(interval)
    assert throttle.ready()
    assert throttle.ready() is second_call


def test_the_last_progress_report_becomes_the_termination_message(tmp_path: Path) -> None:
    progress = {"step": 345, "epoch": 14, "state": "Finished", "eval": {"accuracy": 0.97}}
    progress["checkpoint"] = {"step": 345, "path": "/checkpoints/step_000000345", "time": 1.0}
    progress["world_size"] = 3
    (tmp_path / "progress.json").write_text(json.dumps(progress))
    target = tmp_path / "termination-log"
    target.write_text("")
    termination.write_termination_message(tmp_path, target=target)
    message = json.loads(target.read_text())
    expected = {"step": 345, "epoch": 14, "world_size": 3, "checkpoint": progress["checkpoint"]}
    assert message == expected  # the status of a job no poll caught running says all of it


def test_no_termination_message_where_kubernetes_provides_no_file(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text(json.dumps({"step": 1}))
    termination.write_termination_message(tmp_path, target=tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_a_failure_the_launcher_can_name_goes_into_the_termination_message(
    tmp_path: Path,
) -> None:
    (tmp_path / "progress.json").write_text(json.dumps({"step": 40, "epoch": 1}))
    target = tmp_path / "termination-log"
    target.write_text("")
    failure = {"failureClass": "Communication", "message": "lost the rendezvous store"}
    termination.write_termination_message(tmp_path, failure, target)
    assert json.loads(target.read_text()) == {"step": 40, "epoch": 1, **failure}
