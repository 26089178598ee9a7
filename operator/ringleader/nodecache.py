"""Which nodes are lost or deleted, read from the API only for the few nodes that matter.

Only a pod stuck terminating needs its node's readiness (lostnodes.py), and that is rare, so the
operator reads those few nodes when it needs them rather than keeping every node of the cluster
in memory. An answer is remembered for a few seconds, since one stuck pod is looked at on every
reconcile of its job.

The node watch (handlers.py) keeps nothing either: it reports deletions only, and the names are
remembered here for a while. A reconcile reads such a node again before acting on its pods, in
case a node of the same name has registered since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ringleader import constants as c
from ringleader import lostnodes
from ringleader.apiclient import ApiError
from ringleader.kube import KubeApi, RetryableError

log = logging.getLogger("ringleader.nodecache")
Obj = dict[str, Any]


class LostNodes:
    """Node name → lost or not, read through KubeApi.get_node and kept for a few seconds; and
    the nodes the node watch saw deleted."""

    def __init__(
        self,
        api: KubeApi,
        ttl: float = c.NODE_READINESS_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.ttl, self.clock = api, ttl, clock
        self.seen: dict[str, tuple[float, bool]] = {}  # name → (when read, lost)
        self.deleted: dict[str, float] = {}  # name → when the watch saw it deleted
        self.lock = threading.Lock()  # reconciles run in several worker threads

    def among(self, names: Iterable[str]) -> frozenset[str]:
        """The given nodes that are NotReady, Unknown or gone."""
        return frozenset(name for name in names if self._lost(name))

    def note_deleted(self, name: str) -> None:
        """The node watch saw this node deleted: forget its readiness, remember the deletion."""
        now = self.clock()
        with self.lock:
            self.seen.pop(name, None)
            self.deleted = {
                n: t for n, t in self.deleted.items() if now - t < c.DELETED_NODE_MEMORY_SECONDS
            }
            self.deleted[name] = now

    def deleted_among(self, names: Iterable[str]) -> frozenset[str]:
        """The given nodes seen deleted lately that the API server still does not have."""
        now = self.clock()
        with self.lock:
            deleted = {n: self.deleted[n] for n in names if n in self.deleted}
        recent = [n for n, t in deleted.items() if now - t < c.DELETED_NODE_MEMORY_SECONDS]
        return frozenset(name for name in recent if self._read(name) == (True, None))

    def _read(self, name: str) -> tuple[bool, Obj | None]:
        """(whether the node could be read, the node or None when there is no such node)."""
        try:
            return True, self.api.get_node(name)
        except (ApiError, RetryableError) as error:
            # Forbidden here means the operator's role lacks `get nodes`.
            log.warning("cannot read node %s: %s", name, error)
            return False, None

    def _lost(self, name: str) -> bool:
        now = self.clock()
        with self.lock:
            cached = self.seen.get(name)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        read, node = self._read(name)
        if not read:
            # Not known to be lost, so nothing is force-deleted; the stuck pod's recheck asks again.
            return False
        lost = lostnodes.node_is_lost(node)
        with self.lock:
            self.seen[name] = (now, lost)
            if len(self.seen) > 1000:  # forget nodes no stuck pod asked about lately
                self.seen = {n: v for n, v in self.seen.items() if now - v[0] < self.ttl}
        return lost
