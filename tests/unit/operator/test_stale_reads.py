"""A reconcile decides from the cached job body; when that body is older than the job (a replica
that has just taken over, a watch behind), what it decided must not overwrite the newer status."""

from __future__ import annotations

import asyncio
from typing import cast

from ringleader.controller import Controller
from ringleader.kube import KubeApi
from tests.unit.operator.statusstore import Obj, StatusStore
from tests.unit.operator.test_reconcile_plan import NOW
from tests.unit.operator.test_reconcile_recovery import OOM, fail, settled
from tests.unit.operator.workers import known_names


class WritesKept(StatusStore):
    """Every write accepted (the status subject to its resourceVersion); events, deletions and
    creations kept."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deleted: list[str] = []
        self.created: list[str] = []

    def post_event(self, body: Obj, event_type: str, reason: str, message: str) -> None:
        self.events.append(reason)

    def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> None:
        self.deleted.append(name)

    def create(self, obj: Obj) -> Obj | None:
        self.created.append(obj["metadata"]["name"])
        return obj


def test_a_restart_decided_from_a_stale_body_writes_nothing_and_is_decided_again() -> None:
    job, children = settled()
    api = WritesKept()
    stale = api.hold({**job, "status": {**job["status"], "restarts": 1}})
    # Meanwhile the replica that was active recorded one more restart.
    api.patch_job_status("team-a", "digits", {"restarts": 2})
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()  # where the retry timer goes; never run
    key = controller.cache.put_job(stale)
    for child in fail(children, "digits-worker-1-a0", OOM):
        controller.cache.put_child(child)
    try:
        controller._reconcile(key)
        assert api.conflicts == 1 and controller.failures[key] == 1
        assert (api.events, api.deleted, api.created) == ([], [], [])  # nothing carried out
        controller.cache.put_job(api.hold(api.jobs[key]))  # the watch catches up
        controller._reconcile(key)
    finally:
        controller.loop.close()
    assert api.jobs[key]["status"]["restarts"] == 3
    assert api.events.count("WorkerFailed") == 1
    assert known_names(api.deleted, children) == ["digits-worker-1-a0"]


def test_the_next_pass_decides_from_what_its_own_write_answered() -> None:
    job, children = settled()
    api = WritesKept()
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()
    key = controller.cache.put_job(api.hold(job))
    for child in fail(children, "digits-worker-1-a0", OOM):
        controller.cache.put_child(child)
    try:
        for _ in range(3):  # woken again before the watch reports the write
            controller._reconcile(key)
    finally:
        controller.loop.close()
    assert api.conflicts == 0 and controller.cache.job(key) == api.jobs[key]
    assert api.jobs[key]["status"]["restarts"] == 1 and api.events.count("WorkerFailed") == 1
