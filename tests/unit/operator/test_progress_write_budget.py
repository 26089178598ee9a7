"""Status writes that only move a step on wait for the job's turn once many jobs run; any
other change of progress is written at once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from ringleader.cache import Cache
from ringleader.poller import ProgressPoller
from ringleader.progress import mirror_seconds
from tests.unit.operator.test_poller_hang import (
    HANG_POLICY,
    PatchRecorder,
    poll_at,
    poller_knowing,
)
from tests.unit.operator.test_reconcile_recovery import settled

Obj = dict[str, Any]
T0 = 1_800_000_000.0
TURN = 10.0  # seconds between the mirrors of a step that only moves on


class StatusWriter(PatchRecorder):
    """Records the status patches and applies them to the cached job, as the watch would."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: Cache | None = None

    def patch_job_status(
        self, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> None:
        super().patch_job_status(namespace, name, patch, resource_version)
        assert self.cache is not None
        body = copy.deepcopy(self.cache.job((namespace, name)) or {})
        body.setdefault("status", {}).update(patch)
        self.cache.put_job(body)


def a_running_job() -> tuple[ProgressPoller, StatusWriter, tuple[str, str]]:
    api = StatusWriter()
    poller, key = poller_knowing(*settled(HANG_POLICY), api)
    api.cache = poller.cache
    return poller, api, key


def training(step: int, world: int = 2, checkpoint: int | None = None) -> Callable[[str], Obj]:
    """A report of `step`, done at T0 + step seconds (a step a second)."""
    doc: Obj = {"step": step, "state": "Training", "updated_at": T0 + step, "world_size": world}
    doc["seconds_per_step"] = 1.0
    if checkpoint is not None:
        saved = {"step": checkpoint, "path": f"/c/{checkpoint}", "time": T0 + checkpoint}
        doc["checkpoint"] = saved
    return lambda ip: doc


def mirrored_steps(api: StatusWriter) -> list[int]:
    return [patch["progress"]["step"] for patch in api.patches if "progress" in patch]


def test_a_step_that_only_moves_on_is_mirrored_once_a_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = a_running_job()
    for second in range(21):
        poll_at(monkeypatch, poller, key, float(second), training(second), mirror=TURN)
    assert mirrored_steps(api) == [0, 10, 20]


def test_a_new_group_size_or_checkpoint_is_mirrored_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = a_running_job()
    poll_at(monkeypatch, poller, key, 0.0, training(0), mirror=TURN)
    poll_at(monkeypatch, poller, key, 1.0, training(1, world=1), mirror=TURN)
    poll_at(monkeypatch, poller, key, 2.0, training(2, world=1, checkpoint=2), mirror=TURN)
    poll_at(monkeypatch, poller, key, 3.0, training(3, world=1, checkpoint=2), mirror=TURN)
    assert mirrored_steps(api) == [0, 1, 2]
    assert [e[1] for e in api.events] == ["Resized"]


def test_the_first_step_after_a_failure_is_mirrored_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = a_running_job()
    poll_at(monkeypatch, poller, key, 0.0, training(0), mirror=TURN)
    body = copy.deepcopy(poller.cache.job(key) or {})
    failed = {"class": "NodeLost", "pod": "w", "action": "RestartWorker"}
    body["status"]["lastFailure"] = {**failed, "time": "2027-01-15T08:00:02Z"}  # T0 + 2
    poller.cache.put_job(body)
    poll_at(monkeypatch, poller, key, 4.0, training(4), mirror=TURN)  # the failure's answer
    poll_at(monkeypatch, poller, key, 5.0, training(5), mirror=TURN)  # only moves on again
    assert mirrored_steps(api) == [0, 4]


def test_a_resize_is_timed_from_the_last_report_heard_not_the_last_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = a_running_job()
    for second in range(5):  # mirrored at 0 only: status says step 0 at T0
        poll_at(monkeypatch, poller, key, float(second), training(second), mirror=TURN)
    poll_at(monkeypatch, poller, key, 6.0, training(6, world=1), mirror=TURN)
    (resized,) = [e for e in api.events if e[1] == "Resized"]
    assert "from 2 to 1" in resized[2]
    assert mirrored_steps(api) == [0, 6]


def test_each_jobs_turn_grows_with_the_jobs_past_the_write_budget() -> None:
    assert mirror_seconds(5.0, 20, 20.0) == 5.0  # every poll
    assert mirror_seconds(5.0, 1000, 20.0) == 50.0
    assert mirror_seconds(5.0, 1000, 0.0) == 5.0  # no budget: every poll
