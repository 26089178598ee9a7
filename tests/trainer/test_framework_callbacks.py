"""The client library's callbacks in real framework runs (CPU, one process): Hugging Face's
Trainer and PyTorch Lightning report steps, loss and checkpoints the operator reads, and stop
on SIGTERM with a checkpoint they resume from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ringleader import reports

from .conftest import child_env, pick_free_port, wait_until

SCRIPTS = Path(__file__).parent / "scripts"


def run_env(root: Path) -> dict[str, str]:
    return child_env(
        RINGLEADER_CHECKPOINT_DIR=str(root),
        RINGLEADER_PROGRESS_PORT=str(pick_free_port()),
        RINGLEADER_POD_NAME="job-worker-0-a0",
        RINGLEADER_JOB_NAME="job",
    )


def progress(root: Path) -> reports.ProgressReport | None:
    path = root / "progress.json"
    return reports.parse_progress(json.loads(path.read_text())) if path.exists() else None


def start(script: str, root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args],
        env=run_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def test_a_hugging_face_run_reports_its_steps_loss_and_checkpoints(tmp_path: Path) -> None:
    out = finish(start("hf_tiny.py", tmp_path, str(tmp_path / "hf"), "20"))
    assert "done at 20" in out
    report = progress(tmp_path)
    assert report is not None and report.step == 20 and report.loss is not None
    assert report.state == "Finishing"  # what follows training is no hang
    assert report.checkpoint is not None and report.checkpoint.step == 20
    assert report.checkpoint.path == str(tmp_path / "hf" / "checkpoint-20")
    assert os.path.isdir(report.checkpoint.path)


def test_a_hugging_face_run_stopped_by_sigterm_saves_and_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    output = str(tmp_path / "hf")
    proc = start("hf_tiny.py", tmp_path, output, "400", "0.05")
    wait_until(lambda: (progress(tmp_path) or reports.ProgressReport(0)).step >= 13, 120, "steps")
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    stopped = progress(tmp_path)
    assert stopped is not None and stopped.checkpoint is not None
    assert stopped.checkpoint.step >= 13  # saved where it stopped, not at the last save_steps
    resumed = finish(start("hf_tiny.py", tmp_path, output, str(stopped.checkpoint.step + 4)))
    assert f"resuming from {stopped.checkpoint.path}" in resumed
    assert f"done at {stopped.checkpoint.step + 4}" in resumed


def test_a_lightning_run_saves_keeps_two_reports_and_resumes_after_sigterm(tmp_path: Path) -> None:
    proc = start("lightning_tiny.py", tmp_path, "400", "0.05")
    wait_until(lambda: (progress(tmp_path) or reports.ProgressReport(0)).step >= 23, 120, "steps")
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    stopped = progress(tmp_path)
    assert stopped is not None and stopped.checkpoint is not None and stopped.loss is not None
    saved = sorted(p.name for p in (tmp_path / "lightning").iterdir())
    assert len(saved) == 2 and saved[-1] == f"step-{stopped.checkpoint.step:09d}.ckpt"
    assert stopped.checkpoint.step >= 23  # saved where it stopped
    resumed = finish(start("lightning_tiny.py", tmp_path, str(stopped.checkpoint.step + 5)))
    assert f"resuming from {stopped.checkpoint.path}" in resumed
    assert f"done at {stopped.checkpoint.step + 5}" in resumed
    final = progress(tmp_path)
    assert final is not None and final.state == "Finishing"
