"""Which nodes are lost, read from the API only for the nodes of pods stuck terminating.

Only a pod stuck terminating needs its node's readiness (lostnodes.py), and that is rare, so the
operator reads those few nodes when it needs them rather than watching every node of the cluster
(a watch would hold them all in memory, and each kubelet heartbeat would wake the operator).
An answer is remembered for a few seconds, since one stuck pod is looked at on every reconcile of
its job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from kubernetes.client.exceptions import ApiException

from ringleader import constants as c
from ringleader import lostnodes
from ringleader.kube import KubeApi, RetryableError

log = logging.getLogger("ringleader.nodecache")


class LostNodes:
    """Node name → lost or not, read through KubeApi.get_node and kept for a few seconds."""

    def __init__(
        self,
        api: KubeApi,
        ttl: float = c.NODE_READINESS_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.ttl, self.clock = api, ttl, clock
        self.seen: dict[str, tuple[float, bool]] = {}  # name → (when read, lost)
        self.lock = threading.Lock()  # reconciles run in several worker threads

    def among(self, names: Iterable[str]) -> frozenset[str]:
        """The given nodes that are NotReady, Unknown or gone."""
        return frozenset(name for name in names if self._lost(name))

    def _lost(self, name: str) -> bool:
        now = self.clock()
        with self.lock:
            cached = self.seen.get(name)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            lost = lostnodes.node_is_lost(self.api.get_node(name))
        except (ApiException, RetryableError) as error:
            # Not known to be lost, so nothing is force-deleted; the stuck pod's recheck asks
            # again. Forbidden here means the operator's role lacks `get nodes`.
            log.warning("cannot read node %s: %s", name, error)
            return False
        with self.lock:
            self.seen[name] = (now, lost)
            if len(self.seen) > 1000:  # forget nodes no stuck pod asked about lately
                self.seen = {n: v for n, v in self.seen.items() if now - v[0] < self.ttl}
        return lost
