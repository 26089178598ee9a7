"""Recovery metrics: counted once per recovery carried out; goodput series kept and dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from ringleader import controller as controller_module
from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.metrics import count_recovery, new_recovery, observe_recoveries
from ringleader.poller import ProgressPoller
from ringleader.reports import ProgressReport
from ringleader.statusmodels import JobStatus
from tests.unit.operator.jobs import make_job
from tests.unit.operator.statusstore import StatusStore
from tests.unit.operator.test_reconcile_plan import NOW
from tests.unit.operator.test_reconcile_recovery import OOM, fail, settled

Obj = dict[str, Any]
FAILURE: Obj = {
    "class": "NodeLost",
    "pod": "digits-worker-1-a0",
    "podUID": "uid-1",
    "action": "RestartWorker",
    "time": "2027-01-15T08:00:30Z",
}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_patch_recording_a_failure_is_a_new_recovery() -> None:
    assert new_recovery({}, {"lastFailure": FAILURE}) == FAILURE


def test_a_patch_without_a_failure_is_no_recovery() -> None:
    assert new_recovery({"lastFailure": FAILURE}, {"phase": "Running"}) == {}
    assert new_recovery({}, None) == {}


def test_filling_in_a_field_of_the_recorded_failure_is_no_new_recovery() -> None:
    patch = {"lastFailure": {**FAILURE, "stepsLost": 7}}
    assert new_recovery({"lastFailure": FAILURE}, patch) == {}


def test_a_second_failure_in_the_same_second_is_a_new_recovery() -> None:
    other = {**FAILURE, "pod": "digits-worker-0-a0", "podUID": "uid-0"}
    assert new_recovery({"lastFailure": FAILURE}, {"lastFailure": other}) == other


def test_a_recovery_counts_once_by_class_and_action_with_its_steps_lost() -> None:
    labels = {"class": "NodeLost", "action": "RestartWorker"}
    before = sample("ringleader_recoveries_total", **labels)
    lost = sample("ringleader_steps_lost_total", **{"class": "NodeLost"})
    count_recovery({}, {"lastFailure": {**FAILURE, "stepsLost": 7}})
    assert sample("ringleader_recoveries_total", **labels) == before + 1
    assert sample("ringleader_steps_lost_total", **{"class": "NodeLost"}) == lost + 7


def test_steps_lost_are_skipped_when_the_failure_does_not_say() -> None:
    klass = {"class": "Preempted"}
    lost = sample("ringleader_steps_lost_total", **klass)
    count_recovery({}, {"lastFailure": {**FAILURE, **klass, "stepsLost": None}})
    count_recovery({}, {"lastFailure": {**FAILURE, **klass, "time": "2027-01-15T08:01:00Z"}})
    assert sample("ringleader_steps_lost_total", **klass) == lost
    assert sample("ringleader_recoveries_total", **klass, action="RestartWorker") >= 2


def test_a_recovery_time_lands_in_its_actions_histogram() -> None:
    count = sample("ringleader_recovery_seconds_count", action="RestartGang")
    in_bucket = sample("ringleader_recovery_seconds_bucket", action="RestartGang", le="10.0")
    observe_recoveries([("RestartGang", 8.5)])
    assert sample("ringleader_recovery_seconds_count", action="RestartGang") == count + 1
    after = sample("ringleader_recovery_seconds_bucket", action="RestartGang", le="10.0")
    assert after == in_bucket + 1


class RecordingApi(StatusStore):
    """Accepts every write the controller sends."""

    def delete_pod(self, namespace: str, name: str) -> None:
        pass

    def create(self, obj: Obj) -> Obj:
        return obj

    def post_event(self, body: Obj, event_type: str, reason: str, message: str) -> None:
        pass

    def delete_job(self, namespace: str, name: str) -> None:
        pass


def test_the_controller_counts_a_recovery_once_however_often_it_reconciles() -> None:
    job, children = settled()
    api = RecordingApi()
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()  # where a requeue timer would go; never run
    key = controller.cache.put_job(api.hold(job))
    for child in fail(children, "digits-worker-1-a0", OOM):
        controller.cache.put_child(child)
    labels = {"class": "OutOfMemory", "action": "RestartWorker"}
    before = sample("ringleader_recoveries_total", **labels)
    try:
        for _ in range(3):
            controller._reconcile(key)
    finally:
        controller.loop.close()
    assert sample("ringleader_recoveries_total", **labels) == before + 1


def test_a_jobs_goodput_series_goes_with_the_job() -> None:
    controller = Controller(cast(KubeApi, None))
    poller = ProgressPoller(cast(KubeApi, None), controller.cache, interval=5.0)
    started = datetime.now(UTC).replace(microsecond=0).timestamp() - 100
    start_time = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = {**make_job(name="gp"), "status": {"startTime": start_time}}
    key = controller.cache.put_job(job)
    poller._account(key, ProgressReport(step=1, updated_at=started + 10))
    goodput = sample("ringleader_job_goodput_ratio", namespace="team-a", job="gp")
    assert 0.85 < goodput < 0.95
    controller.cache.forget_job(key)
    poller._forget_the_gone()
    labels = {"namespace": "team-a", "job": "gp"}
    assert REGISTRY.get_sample_value("ringleader_job_goodput_ratio", labels) is None


def test_every_phase_of_the_model_is_exported_even_with_no_job_in_it() -> None:
    schema = JobStatus.model_json_schema()
    phases = schema["$defs"]["Phase"]["enum"]
    assert "Resizing" in phases
    controller = Controller(cast(KubeApi, None))
    controller.cache.put_job({**make_job(name="r"), "status": {"phase": "Resizing"}})
    controller.update_phase_gauge()
    for phase in phases:
        expected = 1.0 if phase == "Resizing" else 0.0
        assert REGISTRY.get_sample_value("ringleader_jobs", {"phase": phase}) == expected


def test_many_job_events_recount_the_phases_once(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = Controller(cast(KubeApi, None))
    recounts: list[int] = []
    monkeypatch.setattr(controller, "update_phase_gauge", lambda: recounts.append(1))
    monkeypatch.setattr(controller_module, "PHASE_GAUGE_SECONDS", 0.05)

    async def events() -> None:
        for _ in range(100):  # a burst of job events
            controller.phase_gauge_soon()
        assert recounts == []  # not one recount each
        await asyncio.sleep(0.2)
        controller.phase_gauge_soon()  # a later event: counted again
        await asyncio.sleep(0.2)

    asyncio.run(events())
    assert len(recounts) == 2
