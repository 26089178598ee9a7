"""The client library as a user's script uses it: a real process reports, serves its progress
on the pod's port, and stops cleanly on SIGTERM; the operator's readers read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringleader import reports

SCRIPT = """
import sys, time
import ringleader_client as ringleader
step = 0
while not ringleader.stop_requested():
    step += 1
    ringleader.report(step, loss=1.0 / step, samples=32, metrics={"accuracy": 0.5, "lr": 0.01})
    if step == 3:
        ringleader.checkpoint_saved(3, "/ckpt/step-3")
    time.sleep(0.05)
ringleader.checkpoint_saved(step, f"/ckpt/step-{step}")
print(f"stopped at {step}", flush=True)
sys.exit(0)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        body: bytes = reply.read()
        return body


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def script_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RINGLEADER_CHECKPOINT_DIR": str(tmp_path),
        "RINGLEADER_PROGRESS_PORT": str(port),
        "RINGLEADER_POD_NAME": "job-worker-0-a0",
        "RINGLEADER_JOB_NAME": "job",
        "RANK": "0",
        "WORLD_SIZE": "2",
        **extra,
    }


@pytest.fixture
def running_script(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        env=script_env(tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_script_serves_what_the_operator_mirrors(
    running_script: tuple[subprocess.Popen[str], int],
) -> None:
    _, port = running_script
    wait_for(lambda: json.loads(get(port, "/progress"))["step"] > 3)
    report = reports.parse_progress(json.loads(get(port, "/progress")))
    assert report is not None and report.training
    assert report.world_size == 2 and report.loss == pytest.approx(1.0 / report.step)
    assert report.checkpoint is not None and report.checkpoint.step == 3
    assert report.seconds_per_step is not None and report.seconds_per_step > 0
    metrics = get(port, "/metrics").decode()
    assert 'ringleader_trainer_metric{name="accuracy"} 0.5' in metrics
    assert "ringleader_trainer_step " in metrics
    beats = json.loads(get(port, "/heartbeats"))
    assert beats["job-worker-0-a0"]["step"] >= 1


def test_sigterm_lets_the_script_save_and_exit_0(
    running_script: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    proc, port = running_script
    wait_for(lambda: json.loads(get(port, "/progress"))["step"] > 3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    stopped_at = int(out.split("stopped at ")[1].split()[0])
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["checkpoint"]["step"] == stopped_at


def test_only_global_rank_0_writes_progress_and_each_pods_local_rank_0_its_heartbeat(
    tmp_path: Path,
) -> None:
    code = "import ringleader_client as r; r.report(5, loss=0.1)"
    env = script_env(tmp_path, free_port(), RANK="3", LOCAL_RANK="0")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert not (tmp_path / "progress.json").exists()
    assert json.loads((tmp_path / "heartbeats" / "job-worker-0-a0.json").read_text())["step"] == 5
    env = script_env(tmp_path, free_port(), RANK="1", LOCAL_RANK="1", RINGLEADER_POD_NAME="p1")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert not (tmp_path / "heartbeats" / "p1.json").exists()


def test_reporting_into_a_directory_it_cannot_write_never_stops_training(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    code = "import ringleader_client as r\nfor s in range(3): r.report(s + 1)\nprint('trained')"
    env = script_env(blocked, free_port())
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "trained" in done.stdout
    assert done.stderr.count("ringleader_client: cannot write progress") == 1


def test_stop_requested_must_start_on_the_main_thread() -> None:
    code = (
        "import threading, ringleader_client as r\n"
        "errors = []\n"
        "def ask():\n"
        "    try: r.stop_requested()\n"
        "    except RuntimeError as e: errors.append(str(e))\n"
        "t = threading.Thread(target=ask); t.start(); t.join()\n"
        "print(errors[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "main thread" in done.stdout


def test_reporting_needs_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys, ringleader_client as r\n"
        "r.report(1); r.checkpoint_saved(1, '/x'); r.stop_requested()\n"
        "third = {m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'prometheus_client'}\n"
        "print(sorted(third))\n"
    )
    env = {**os.environ, "RINGLEADER_CHECKPOINT_DIR": "/nonexistent/x"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "[]", done.stderr
