"""Which API group/versions the cluster serves, asked through discovery and kept for a while.

A gang job needs its scheduler's PodGroup API (gang.py). An API found served is trusted for
DISCOVERY_CACHE_SECONDS, so a burst of reconciles costs one request; one not found is asked
about again each time, since the job fails on that answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ringleader import constants as c
from ringleader.apiclient import ApiError
from ringleader.kube import KubeApi, RetryableError

log = logging.getLogger("ringleader.discovery")


class ServedApis:
    """api_version → served, from KubeApi.served_api_versions; a yes is kept `ttl` seconds."""

    def __init__(
        self,
        api: KubeApi,
        ttl: float = c.DISCOVERY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.ttl, self.clock = api, ttl, clock
        self.lock = threading.Lock()  # reconciles run in several worker threads
        self.read_at: float | None = None
        self.served: frozenset[str] = frozenset()

    def serves(self, api_version: str) -> bool:
        """Whether the cluster serves api_version (e.g. scheduling.volcano.sh/v1beta1)."""
        now = self.clock()
        with self.lock:
            fresh = self.read_at is not None and now - self.read_at < self.ttl
            if fresh and api_version in self.served:
                return True
            # "Not served" fails a job, so it is never taken from the cache: a scheduler
            # installed a moment ago is seen.
            try:
                self.served = self.api.served_api_versions()
            except (ApiError, RetryableError) as error:
                # Unknown is not missing: no job fails for it; creating the PodGroup will tell.
                log.warning("discovery failed: %s", error)
                return True
            self.read_at = now
            return api_version in self.served
