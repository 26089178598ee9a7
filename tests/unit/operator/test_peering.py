"""A replica kopf has paused for a peer decides nothing: not on its timers, not on its poller."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import cast

import pytest
from kopf._core.engines import peering as kopf_peering

from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.peering import PAUSING, PEERING_LOGGER, RESUMING, follow_pauses
from tests.unit.operator.test_poller_hang import at_step, poll_at, running_job
from tests.unit.operator.test_reconcile_plan import NOW
from tests.unit.operator.test_reconcile_recovery import OOM, fail, settled
from tests.unit.operator.test_stale_reads import WritesKept
from tests.unit.operator.workers import known_names


def test_the_announcements_followed_are_kopfs_own_words() -> None:
    source = inspect.getsource(kopf_peering)
    for words in (*PAUSING, RESUMING):
        assert f'logger.info(f"{words}' in source or f'logger.warning(f"{words}' in source, words


def test_a_replica_follows_kopfs_announcements_from_its_start() -> None:
    logger = logging.getLogger(PEERING_LOGGER)
    standalone, peered = follow_pauses(peering=False), follow_pauses(peering=True)
    try:
        assert (standalone.paused, peered.paused) == (False, True)  # kopf starts peers paused
        logger.info("Resuming operations after the pause. Conflicting operators are gone.")
        assert not peered.paused
        logger.info("Pausing operations in favour of [Peer(id='b', priority=200)].")
        assert peered.paused
        logger.warning("Pausing all operators, including self: [...]")
        assert peered.paused
    finally:
        logger.removeFilter(standalone)
        logger.removeFilter(peered)


def test_a_paused_replica_acts_on_nothing_and_acts_once_resumed() -> None:
    job, children = settled()
    api = WritesKept()
    paused = [True]
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW, paused=lambda: paused[0])
    controller.loop = asyncio.new_event_loop()
    key = controller.cache.put_job(api.hold(job))
    for child in fail(children, "digits-worker-1-a0", OOM):
        controller.cache.put_child(child)
    try:
        controller._reconcile(key)  # e.g. a requeue timer set before the pause
        assert (api.patches, api.events, api.deleted) == ([], [], [])
        paused[0] = False
        controller._reconcile(key)
    finally:
        controller.loop.close()
    assert api.events.count("WorkerFailed") == 1
    assert known_names(api.deleted, children) == ["digits-worker-1-a0"]


def test_a_paused_replica_polls_nothing_and_forgets_the_step_pace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, _, key = running_job()
    poll_at(monkeypatch, poller, key, 0.0, at_step(10))
    assert key in poller.watches
    asked: list[str] = []
    poller.paused = lambda: True
    monkeypatch.setattr(poller, "poll_once", lambda: asked.append("polled"))
    asyncio.run(poller.tick())
    assert asked == [] and poller.watches == {}  # resumed, the pace is measured anew
