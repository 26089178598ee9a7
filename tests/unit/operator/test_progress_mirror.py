"""Progress mirroring: which worker is asked, and what reaches status."""

from __future__ import annotations

import json
from typing import Any

from ringleader.progress import (
    build_progress_status,
    pick_reporter,
    plan_progress_patch,
    read_final_report,
)

CHECKPOINT = {"step": 100, "path": "/checkpoints/step-00000100", "time": 1_799_999_990.0}
REPORT: dict[str, Any] = {
    "step": 120,
    "epoch": 2,
    "loss": 0.123456789,
    "samples_per_second": 4321.06,
    "updated_at": 1_800_000_000.5,
    "checkpoint": CHECKPOINT,
}


def worker(index: int, attempt: int, phase: str = "Running", ip: str = "10.0.0.9") -> Any:
    labels = {
        "ringleader.dev/role": "worker",
        "ringleader.dev/replica-index": str(index),
        "ringleader.dev/restart-attempt": str(attempt),
    }
    status = {"phase": phase, "podIP": ip} if ip else {"phase": phase}
    return {"kind": "Pod", "metadata": {"name": f"w-{index}", "labels": labels}, "status": status}


def test_the_lowest_running_worker_of_the_current_attempt_reports() -> None:
    pods = [worker(1, 2), worker(0, 1), worker(0, 2, phase="Pending"), worker(2, 2)]
    chosen = pick_reporter(pods, attempt=2)
    assert chosen is not None and chosen["metadata"]["name"] == "w-1"


def test_no_worker_reports_before_one_runs_with_an_address() -> None:
    assert pick_reporter([worker(0, 0, ip=""), worker(1, 0, phase="Pending")], 0) is None


def test_a_report_becomes_progress_and_checkpoint_in_kubernetes_shapes() -> None:
    status = build_progress_status(REPORT)
    assert status["progress"] == {
        "step": 120,
        "epoch": 2,
        "loss": 0.123457,
        "samplesPerSecond": 4321.1,
        "updatedAt": "2027-01-15T08:00:00Z",
    }
    assert status["checkpoint"] == {
        "step": 100,
        "path": "/checkpoints/step-00000100",
        "time": "2027-01-15T07:59:50Z",
    }


def test_a_report_already_in_status_writes_nothing() -> None:
    status = build_progress_status(REPORT)
    assert plan_progress_patch(status, REPORT) is None


def test_a_new_step_with_the_same_checkpoint_patches_progress_only() -> None:
    status = build_progress_status(REPORT)
    patch = plan_progress_patch(status, {**REPORT, "step": 121})
    assert patch is not None and set(patch) == {"progress"}


def test_no_report_or_one_without_a_step_writes_nothing() -> None:
    assert plan_progress_patch({}, None) is None
    assert plan_progress_patch({}, {"state": "starting"}) is None


def finished_worker(index: int, attempt: int, message: str) -> Any:
    pod = worker(index, attempt, phase="Succeeded")
    terminated = {"exitCode": 0, "reason": "Completed", "message": message}
    pod["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return pod


def test_the_final_report_comes_from_the_lowest_finished_worker_of_the_attempt() -> None:
    pods = [
        finished_worker(1, 0, '{"step": 344}'),
        finished_worker(0, 0, '{"step": 345}'),
        finished_worker(0, 1, "not json: a user's own message"),
    ]
    assert read_final_report(pods, attempt=0) == {"step": 345}
    assert read_final_report(pods, attempt=1) is None


def test_a_final_report_moves_status_to_the_last_step() -> None:
    status = build_progress_status(REPORT)
    final = {**REPORT, "step": 345, "checkpoint": {**CHECKPOINT, "step": 345}}
    report = read_final_report([finished_worker(0, 0, json.dumps(final))], attempt=0)
    patch = plan_progress_patch(status, report)
    assert patch is not None
    assert (patch["progress"]["step"], patch["checkpoint"]["step"]) == (345, 345)
