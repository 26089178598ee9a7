"""Status writes that only recount workers wait HOLD_SECONDS after the last one, the rest of their
pass going ahead; a phase change is written at once."""

from __future__ import annotations

from typing import Any, cast

from ringleader import pods
from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.statuspacing import HOLD_SECONDS, StatusPacer, only_recounts
from tests.unit.operator.jobs import make_job
from tests.unit.operator.test_reconcile_plan import NOW, running
from tests.unit.operator.test_stale_reads import WritesKept

KEY = ("team-a", "digits")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def started() -> tuple[Controller, WritesKept, Clock, list[tuple[Any, ...]]]:
    """A controller that has made a two-worker job's children and said Starting; the timers it
    asks for are kept, not run."""
    api, clock, timers = WritesKept(), Clock(), []
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.status_pacer = StatusPacer(clock)
    controller._call_soon = lambda fn, *args: timers.append(args)  # type: ignore[method-assign]
    controller.cache.put_job(api.hold(make_job()))
    controller._reconcile(KEY)
    assert api.jobs[KEY]["status"]["phase"] == "Starting" and len(api.patches) == 1
    return controller, api, clock, timers


def worker(controller: Controller, index: int) -> dict[str, Any]:
    """The job's one worker pod of that index, as the cache holds it."""
    (pod,) = (
        p for p in controller.cache.children(KEY) if pods.is_worker(p) and pods.index_of(p) == index
    )
    return pod


def ready(controller: Controller, index: int) -> None:
    """The watch reports worker `index` running and ready."""
    controller.cache.put_child(running(worker(controller, index)))


def test_a_recount_soon_after_a_write_waits_and_is_written_when_its_timer_comes() -> None:
    controller, api, clock, timers = started()
    clock.now += 0.5
    ready(controller, 0)
    controller._reconcile(KEY)
    assert len(api.patches) == 1  # "1/2 ready" held
    ((key, delay),) = timers
    assert key == KEY and HOLD_SECONDS - 0.5 < delay <= HOLD_SECONDS
    clock.now += delay
    controller._reconcile(KEY)  # the timer's pass
    assert len(api.patches) == 2
    status = api.jobs[KEY]["status"]
    assert (status["phase"], status["workers"], status["readyReplicas"]) == ("Starting", "1/2", 1)


def test_a_phase_change_is_written_at_once_whatever_was_held() -> None:
    controller, api, clock, _ = started()
    clock.now += 0.3
    ready(controller, 0)
    controller._reconcile(KEY)
    clock.now += 0.3
    ready(controller, 1)
    controller._reconcile(KEY)
    assert len(api.patches) == 2 and api.jobs[KEY]["status"]["phase"] == "Running"
    assert api.events == ["WorkersStarting", "AllWorkersRunning"]


def test_only_counts_and_the_messages_stating_them_are_a_recount() -> None:
    old = {
        "phase": "Starting",
        "conditions": [{"type": "Starting", "status": "True", "reason": "R", "message": "0/2"}],
    }
    recount = {
        "workers": "1/2",
        "readyReplicas": 1,
        "conditions": [{"type": "Starting", "status": "True", "reason": "R", "message": "1/2"}],
    }
    assert only_recounts(old, recount)
    assert not only_recounts(old, {**recount, "phase": "Running"})
    new_reason = [{"type": "Starting", "status": "True", "reason": "Other", "message": "1/2"}]
    assert not only_recounts(old, {**recount, "conditions": new_reason})
    assert not only_recounts(old, {"workers": "1/2", "startTime": "2026-05-06T07:08:09Z"})
    assert not only_recounts(old, None)


def test_a_replacement_is_made_at_once_and_its_recount_said_when_the_hold_ends() -> None:
    controller, api, clock, timers = started()
    ready(controller, 0)
    ready(controller, 1)
    controller._reconcile(KEY)
    assert api.jobs[KEY]["status"]["phase"] == "Running"
    clock.now += 3.0
    leaving = worker(controller, 1)
    leaving["metadata"]["deletionTimestamp"] = "2026-05-06T07:08:09Z"
    controller.cache.put_child(leaving)
    controller._reconcile(KEY)  # a phase change: written at once
    status = api.jobs[KEY]["status"]
    assert status["phase"] == "Starting" and "being deleted" in str(status["conditions"])
    patches, timers[:] = len(api.patches), []
    clock.now += 0.5
    controller.cache.put_child(leaving, deleted=True)
    controller._reconcile(KEY)
    assert len(api.patches) == patches  # "1/2 ready" without the leaving pod: held...
    assert len(api.created) == 5  # ...and the replacement made at once (4 children, then it)
    ((key, delay),) = timers
    assert key == KEY and delay <= HOLD_SECONDS - 0.5 + 0.1
    clock.now += delay
    controller._reconcile(KEY)  # the timer's pass
    assert len(api.patches) == patches + 1
    assert "being deleted" not in str(api.jobs[KEY]["status"]["conditions"])
