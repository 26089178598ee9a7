"""A work queue of job keys and the workers that reconcile them, from what the watches saw.

Events only say "look at this job again"; a reconcile always works from the latest cached state,
so bursts of pod events for one job collapse into one reconcile, and one job is never
reconciled by two workers at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ringleader import gang, lostnodes
from ringleader.cache import Cache, Key
from ringleader.constants import Phase
from ringleader.discovery import ServedApis
from ringleader.kube import Conflict, CreationRefused, KubeApi, RetryableError
from ringleader.kueuefacts import KueueLookups
from ringleader.metrics import (
    JOBS_BY_PHASE,
    RECONCILE_ERRORS,
    RECONCILE_SECONDS,
    count_recovery,
)
from ringleader.nodecache import LostNodes
from ringleader.reconcile import Carried, Plan, execute_plan, plan_reconcile, plan_refusal
from ringleader.relist import Relister
from ringleader.statuspacing import StatusPacer
from ringleader.workqueue import JobQueue

Obj = dict[str, Any]
log = logging.getLogger("ringleader.controller")

MAX_BACKOFF_SECONDS = 60.0
# The jobs-by-phase gauge is recounted at most this often: a recount reads every job, and
# each job's status write brings an event (at 1,000 jobs, a recount per event was O(jobs²)).
PHASE_GAUGE_SECONDS = 1.0


class Controller:
    """Reconciles queued jobs with a fixed number of concurrent workers."""

    def __init__(
        self,
        api: KubeApi,
        workers: int = 8,
        clock: Callable[[], datetime] | None = None,
        namespaces: list[str] | None = None,
        paused: Callable[[], bool] = lambda: False,
    ):
        self.api = api
        self.paused = paused  # kopf paused this replica for a peer: decide nothing (peering.py)
        self.lost_nodes = LostNodes(api)
        self.served_apis = ServedApis(api)
        self.kueue = KueueLookups(api)
        self.cache = Cache()
        self.status_pacer = StatusPacer()
        self.queue = JobQueue()
        self.failures: dict[Key, int] = defaultdict(int)
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.workers = workers
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        # What a relist finds gone is a child no watch reported deleted: a slot to fill, urgent.
        self.relister = Relister(api, self.cache, partial(self.enqueue, urgent=True), namespaces)
        self.phase_recount: asyncio.TimerHandle | None = None

    def enqueue(self, key: Key, urgent: bool = False) -> None:
        """Ask for a reconcile of this job (deduplicated); an urgent one goes ahead of the
        others (a child of the job went away: a slot to fill)."""
        self.queue.add(key, urgent)

    def node_deleted(self, name: str) -> None:
        """A node was deleted: reconcile every job with a pod on it (they act on it at once)."""
        self.lost_nodes.note_deleted(name)
        for key in self.cache.keys_with_pods_on(name):
            self.enqueue(key)

    def enqueue_after(self, key: Key, seconds: float) -> None:
        """Reconcile this job again after a delay (replacing an earlier timer)."""
        if (timer := self.timers.pop(key, None)) is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self.timers[key] = loop.call_later(seconds, self.enqueue, key)

    def start(self) -> None:
        """Start the worker tasks on the running event loop."""
        self.loop = asyncio.get_running_loop()
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        """Cancel the workers and timers."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for timer in self.timers.values():
            timer.cancel()
        if self.phase_recount is not None:
            self.phase_recount.cancel()
        self.relister.cancel()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await asyncio.to_thread(self._reconcile, key)
            finally:
                self.queue.done(key)

    def _reconcile(self, key: Key) -> None:
        body = self.cache.job(key)
        if body is None or self.paused():
            # Paused, the cache is as old as the pause; resuming, kopf lists everything again,
            # and each job's events bring it back here.
            return
        children = self.cache.children(key)
        started = time.perf_counter()
        try:
            now = self.clock()
            lost = self.lost_nodes.among(lostnodes.nodes_to_check(children, now))
            deleted = self.lost_nodes.deleted_among(lostnodes.bound_nodes(children))
            served = self._pod_groups_served(body)
            kueue = self.kueue.facts(body, children)
            plan = plan_reconcile(
                body, children, now, lost, served, deleted_nodes=deleted, kueue=kueue
            )
            plan = self.status_pacer.pace(key, body, plan)  # a recount may wait (requeue_after)
            carried = execute_plan(self.api, body, plan)
        except RetryableError as error:
            # The children created before the failed call exist: remembered, so that the next
            # pass does not fill their slots again (a worker's name is its own: no 409 to stop
            # it). Force-deletions are not: the call that failed may have come before them.
            self._remember_writes(key, body, Plan(), Carried(error.written_job, error.created))
            self._retry_later(key, error)
            return
        except CreationRefused as refused:
            # What was written before the refused create (status first) holds: remembered,
            # so that the refusal is recorded on top of it.
            self._remember_writes(key, body, plan, Carried(refused.written_job, refused.created))
            self._record_refusal(key, self.cache.job(key) or body, refused)
            return
        except Exception as error:
            log.exception("reconcile of %s/%s failed", *key)
            self._retry_later(key, error)
            return
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
        self.failures.pop(key, None)
        # Counted once the whole plan is carried out. Should a call after the status write fail,
        # the next pass finishes the recovery without recording it anew: it goes uncounted,
        # never counted twice.
        count_recovery(body.get("status"), plan.status_patch)
        self._remember_writes(key, body, plan, carried)
        if plan.requeue_after is not None:
            self._call_soon(self.enqueue_after, key, plan.requeue_after + 0.1)

    def _record_refusal(self, key: Key, body: Obj, refused: CreationRefused) -> None:
        """Say in status why a child could not be made; try again later unless it is lasting
        (then the next pass, woken by this write, fails the job)."""
        log.warning("%s/%s: %s", *key, refused)
        try:
            plan = plan_refusal(body, refused, self.clock(), self.cache.children(key))
            self._remember_writes(key, body, plan, execute_plan(self.api, body, plan))
        except RetryableError as error:
            self._retry_later(key, error)
            return
        if not refused.lasting:
            self._retry_later(key, refused, quietly=True)

    def _pod_groups_served(self, body: Obj) -> bool:
        """Whether a gang job's scheduler's PodGroup API is served (True for other jobs)."""
        scheduling = (body.get("spec") or {}).get("scheduling") or {}
        api = gang.pod_group_api(bool(scheduling.get("gang")), scheduling.get("schedulerName"))
        return api is None or self.served_apis.serves(api.api_version)

    def _remember_writes(self, key: Key, body: Obj, plan: Plan, carried: Carried) -> None:
        # The watch reports our own writes a moment later; until then a reconcile must not act
        # on the state from before them (it would create twice, restart twice, or force-delete
        # a pod on a deleted node twice, announcing it twice).
        if carried.job is not None:
            self.cache.record_status_write(key, body, carried.job)
            self.status_pacer.wrote(key)
        for obj in carried.created:
            self.cache.put_child(obj, only_if_absent=True)
        for name in plan.force_delete_pods:
            self.cache.forget_pod(key, name)

    def _retry_later(self, key: Key, error: BaseException, quietly: bool = False) -> None:
        RECONCILE_ERRORS.inc()
        self.failures[key] += 1
        delay = min(0.5 * 2 ** (self.failures[key] - 1), MAX_BACKOFF_SECONDS)
        if isinstance(error, Conflict):  # decided from a body older than the job: routine
            log.info("%s/%s changed since it was read; deciding again in %.1fs", *key, delay)
        elif not quietly:
            log.warning("retrying %s/%s in %.1fs: %s", *key, delay, error)
        self._call_soon(self.enqueue_after, key, delay)

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        # _reconcile runs in a worker thread; timers belong to the event loop's thread.
        assert self.loop is not None, "start() binds the loop before any reconcile"
        self.loop.call_soon_threadsafe(fn, *args)

    def phase_gauge_soon(self) -> None:
        """Recount jobs by phase within PHASE_GAUGE_SECONDS (once, however many events ask)."""
        if self.phase_recount is None:
            self.phase_recount = asyncio.get_running_loop().call_later(
                PHASE_GAUGE_SECONDS, self._recount_phases
            )

    def _recount_phases(self) -> None:
        self.phase_recount = None
        self.update_phase_gauge()

    def update_phase_gauge(self) -> None:
        """Recount jobs by phase for the ringleader_jobs metric (every phase, zeros included)."""
        counts: dict[str, int] = defaultdict(int)
        for _, body in self.cache.jobs():
            counts[(body.get("status") or {}).get("phase") or Phase.PENDING] += 1
        for phase in Phase:
            JOBS_BY_PHASE.labels(phase=phase.value).set(counts.get(phase, 0))
