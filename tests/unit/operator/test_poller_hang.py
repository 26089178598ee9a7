"""The progress poller's hang check: judged on what a worker answered, never on its silence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from ringleader import poller as poller_module
from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.poller import ProgressPoller
from tests.unit.operator.jobs import parse
from tests.unit.operator.test_reconcile_recovery import settled

Obj = dict[str, Any]
HANG_POLICY = {"failurePolicy": {"hangDetection": {"minSeconds": 5, "stepTimeMultiple": 5}}}


class PatchRecorder:
    """The API calls the poller makes here: status patches and events, kept in order."""

    def __init__(self) -> None:
        self.patches: list[Obj] = []
        self.events: list[tuple[str, str, str]] = []

    def patch_job_status(
        self, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> None:
        self.patches.append(patch)

    def post_event(self, body: Obj, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))


def poller_knowing(
    job: Obj, children: list[Obj], api: PatchRecorder
) -> tuple[ProgressPoller, tuple[str, str]]:
    """A poller whose cache holds the job, Running, and its children, each with a pod IP."""
    job["status"]["phase"] = "Running"
    controller = Controller(cast(KubeApi, api))
    key = controller.cache.put_job(job)
    for child in children:
        child.setdefault("status", {})["podIP"] = "10.0.0.9"
        controller.cache.put_child(child)
    return ProgressPoller(cast(KubeApi, api), controller.cache, interval=1.0), key


def running_job() -> tuple[ProgressPoller, PatchRecorder, tuple[str, str]]:
    """A poller that knows one Running job whose workers have IPs."""
    api = PatchRecorder()
    poller, key = poller_knowing(*settled(HANG_POLICY), api)
    return poller, api, key


def poll_at(
    monkeypatch: pytest.MonkeyPatch,
    poller: ProgressPoller,
    key: tuple[str, str],
    moment: float,
    answer: Callable[[str], Obj | None],
    *,
    mirror: float = 1.0,
) -> None:
    """One poll of the job at `moment` on the poller's clock, the worker answering `answer`;
    a step that only moves on is mirrored every `mirror` seconds."""
    monkeypatch.setattr(poller_module, "now", lambda: moment)
    monkeypatch.setattr(poller_module, "fetch_progress", answer)
    monkeypatch.setattr(poller_module, "fetch_heartbeats", lambda ip: {})
    asyncio.run(poller._poll(key, parse(poller.cache.job(key) or {}), mirror))


def at_step(step: int) -> Callable[[str], Obj]:
    return lambda ip: {"step": step, "state": "Training", "seconds_per_step": 0.2}


def no_answer(ip: str) -> Obj:
    raise ConnectionRefusedError("the launcher exited")


def hangs(api: PatchRecorder) -> list[Obj]:
    return [patch["hang"] for patch in api.patches if "hang" in patch]


def silent_after_step_11(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ProgressPoller, PatchRecorder, tuple[str, str]]:
    """A job seen at steps 10 and 11, whose worker then said nothing for 99 s."""
    poller, api, key = running_job()
    poll_at(monkeypatch, poller, key, 0.0, at_step(10))
    poll_at(monkeypatch, poller, key, 1.0, at_step(11))
    poll_at(monkeypatch, poller, key, 100.0, no_answer)
    return poller, api, key


def test_a_worker_that_stops_answering_after_its_last_step_is_not_hung(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, api, _ = silent_after_step_11(monkeypatch)
    assert hangs(api) == []


def test_a_worker_that_answers_with_the_same_step_past_the_threshold_is_hung(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = silent_after_step_11(monkeypatch)
    poll_at(monkeypatch, poller, key, 103.0, at_step(11))  # asked again after the backoff
    assert [(h["step"], h["stalledSeconds"]) for h in hangs(api)] == [(11, 102)]


def test_workers_that_never_answer_are_said_to_report_nothing_after_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, api, key = running_job()
    for moment in (0.0, 30.0, 59.0):
        poll_at(monkeypatch, poller, key, moment, no_answer)
    assert not [p for p in api.patches if "reporting" in p]
    poll_at(monkeypatch, poller, key, 200.0, no_answer)  # past its backoff, asked again
    (said,) = [p["reporting"] for p in api.patches if "reporting" in p]
    assert said["reported"] is False and "client library" in said["message"]
    assert hangs(api) == []


class KeyedRecorder(PatchRecorder):
    """Status patches with the job each is written to."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[str, str]] = []

    def patch_job_status(
        self, namespace: str, name: str, patch: Obj, resource_version: str | None = None
    ) -> None:
        self.targets.append((namespace, name))
        super().patch_job_status(namespace, name, patch)


def test_a_worker_can_write_only_its_own_jobs_status_whatever_it_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = KeyedRecorder()
    poller, key = poller_knowing(*settled(HANG_POLICY), api)
    lying = {"step": 99, "state": "Training", "job": "someone-else", "namespace": "team-b"}
    poll_at(monkeypatch, poller, key, 0.0, lambda ip: lying)
    assert api.targets and set(api.targets) == {key}
