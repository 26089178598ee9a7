"""ProgressReporter: throttled writes that still end with the last step reached."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ringleader_client.contract import TrainerState
from ringleader_client.reporting import Place, ProgressReporter


def reporter(root: Path, interval: float) -> ProgressReporter:
    place = Place(0, 0, 2, "job-worker-0-a0", "job", root)
    return ProgressReporter(place, progress_interval=interval, heartbeat_interval=interval)


def written(root: Path) -> dict[str, object]:
    progress: dict[str, object] = json.loads((root / "progress.json").read_text())
    return progress


def heartbeat_step(root: Path) -> object:
    return json.loads((root / "heartbeats" / "job-worker-0-a0.json").read_text())["step"]


def test_a_step_reported_too_soon_is_written_once_the_interval_is_over(tmp_path: Path) -> None:
    progress = reporter(tmp_path, interval=0.3)
    progress.report(1, loss=0.5, samples=8)
    progress.report(2, loss=0.4, samples=8)  # too soon: the files still tell step 1
    assert written(tmp_path)["step"] == 1
    deadline = time.monotonic() + 5
    while written(tmp_path)["step"] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # No further report came (a job stuck in a collective): the last step reached is told.
    assert written(tmp_path)["step"] == 2 and written(tmp_path)["loss"] == 0.4
    assert heartbeat_step(tmp_path) == 2


def test_an_announcement_keeps_the_last_loss_and_is_written_at_once(tmp_path: Path) -> None:
    progress = reporter(tmp_path, interval=3600)
    progress.report(7, loss=0.25, samples=8, epoch=1)
    progress.announce(7, TrainerState.FINISHING)
    document = written(tmp_path)
    assert (document["state"], document["loss"], document["epoch"]) == ("Finishing", 0.25, 1)


def test_a_committed_checkpoint_is_told_at_once_with_the_steps_own_time(tmp_path: Path) -> None:
    progress = reporter(tmp_path, interval=3600)
    progress.report(7, loss=0.25, samples=8)
    stepped_at = written(tmp_path)["updated_at"]
    progress.checkpoint_saved(7, "/c/step-7", when=123.0)
    document = written(tmp_path)
    assert document["checkpoint"] == {"step": 7, "path": "/c/step-7", "time": 123.0}
    assert document["updated_at"] == stepped_at  # a checkpoint is no new step


def test_each_process_tells_its_first_step_and_the_step_before_it_began(tmp_path: Path) -> None:
    first = reporter(tmp_path, interval=0)
    first.report(1, loss=0.5)
    first.report(2, loss=0.4)
    document = written(tmp_path)
    began = {"first_step": 1, "first_step_at": document["incarnation"]["first_step_at"]}  # type: ignore[index]
    assert document["incarnation"] == {**began, "previous_step": None, "previous_step_at": None}
    # The next process (after a restart) finds the job's document at step 2 when it begins.
    second = reporter(tmp_path, interval=0)
    second.report(2, loss=0.3)
    second.report(3, loss=0.2)
    told = written(tmp_path)["incarnation"]
    assert told["first_step"] == 2 and told["previous_step"] == 2  # type: ignore[index]
    assert told["previous_step_at"] == document["updated_at"]  # type: ignore[index]
    assert told["first_step_at"] > document["updated_at"]  # type: ignore[index]
