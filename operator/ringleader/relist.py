"""Relists: what the watches never report.

A watch that starts again lists what exists: when a standby replica takes over (kopf stops its
watches while it waits), or after the API server lost the watch's resourceVersion (a restart, a
compaction). An object deleted in between is in no listing and in no DELETED event, so the cache
would hold it for good: a worker pod that went while no replica was active would look Running
and never be replaced. So the operator lists jobs and children itself, soon after a watch lists
again, and drops from the cache what its listing lacks. (Not on a timer besides: when it was, a
replica kopf had paused reconciled on its timers; that is no longer so since peering.py, and a
periodic relist is the next safety net for an object whose deletion was missed some other way.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ringleader.cache import Cache, ChildId, Key, job_key_of_child
from ringleader.kube import KubeApi

log = logging.getLogger(__name__)

RELIST_DELAY = 5.0  # seconds after a watch lists again: its listing is over by then
RELIST_LONGEST_DELAY = 300.0  # seconds: the back-off after failed relists stops growing here

Listed = tuple[set[Key], set[tuple[Key, ChildId]]]


class Relister:
    """Lists jobs and children and drops from the cache what no longer exists. `namespaces`:
    those the operator watches (None: every namespace; kopf's glob patterns are not listed)."""

    def __init__(
        self,
        api: KubeApi,
        cache: Cache,
        changed: Callable[[Key], None],
        namespaces: list[str] | None = None,
    ) -> None:
        self.api, self.cache, self.changed = api, cache, changed
        self.namespaces = None if namespaces is None else [n for n in namespaces if _plain(n)]
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures = 0

    def soon(self) -> None:
        """Relist after RELIST_DELAY, longer after failures (once, however often asked
        meanwhile). Event loop only."""
        if self._pending is None:
            delay = min(RELIST_DELAY * 2**self._failures, RELIST_LONGEST_DELAY)
            self._pending = asyncio.get_running_loop().call_later(delay, self._start)

    def _start(self) -> None:
        self._pending = None
        task = asyncio.create_task(self.relist())
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def relist(self) -> None:
        """List, then drop what was held before the listing began and is not in it."""
        before = self.cache.snapshot()
        try:
            jobs, children = await asyncio.to_thread(self._list)
        except Exception as error:  # an API fault, RBAC missing...: try again later, never die
            self._failures += 1
            log.warning("relist failed (%d in a row), trying again: %s", self._failures, error)
            self.soon()
            return
        self._failures = 0
        scope = None if self.namespaces is None else set(self.namespaces)
        for key in self.cache.drop_unlisted(before, jobs, children, scope):
            log.info("%s/%s: relist found objects gone that no watch reported", *key)
            self.changed(key)

    def cancel(self) -> None:
        """Drop a pending relist."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _list(self) -> Listed:
        listed_jobs, listed_children = [], []
        for namespace in [None] if self.namespaces is None else self.namespaces:
            listed_jobs += self.api.list_jobs(namespace)
            listed_children += self.api.list_children(namespace)
        jobs = {(j["metadata"]["namespace"], j["metadata"]["name"]) for j in listed_jobs}
        children = set()
        for child in listed_children:
            key = job_key_of_child(child)
            if key is not None:
                children.add((key, (str(child["kind"]), str(child["metadata"]["name"]))))
        return jobs, children


def _plain(namespace: str) -> bool:
    """A namespace's name, not one of kopf's patterns (globs, negations)."""
    return not any(char in namespace for char in "*?[]!,")
