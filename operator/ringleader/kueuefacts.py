"""The facts a job queued with Kueue needs from outside its own objects, read through the API
and kept a minute: its PriorityClass's value (for the Workload, when it is made) and the
ResourceFlavors Kueue admitted it to (their node labels and tolerations go on its pods).

A burst of reconciles of many queued jobs costs one read of each; a flavor edited since is seen
within CACHE_SECONDS, which is also how late a re-admission after such an edit may be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ringleader import kueueworkload as kw
from ringleader import queueing
from ringleader.kube import KubeApi
from ringleader.queueing import NO_KUEUE_FACTS, KueueFacts

CACHE_SECONDS = 60.0
T = TypeVar("T")
Obj = dict[str, Any]


class KueueLookups:
    """KueueFacts for a job, from the API server, each answer kept CACHE_SECONDS."""

    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.clock = api, clock
        self.lock = threading.Lock()  # reconciles run in several worker threads
        self.kept: dict[tuple[str, str], tuple[float, Any]] = {}

    def facts(self, body: Mapping[str, Any], children: Sequence[Mapping[str, Any]]) -> KueueFacts:
        """What queueing.gate needs for this job (nothing for a job not queued with Kueue)."""
        labels = (body.get("metadata") or {}).get("labels") or {}
        if kw.QUEUE_LABEL not in labels:
            return NO_KUEUE_FACTS
        workload = queueing.find_workload(children)
        if workload is None:  # the Workload is about to be made: it carries the priority
            scheduling = (body.get("spec") or {}).get("scheduling") or {}
            name = scheduling.get("priorityClassName")
            priority = (
                self._kept("PriorityClass", name, self.api.priority_class_value) if name else None
            )
            return KueueFacts(priority=priority)
        admission = kw.read_admission(workload)
        flavors = {
            name: flavor
            for name in admission.flavors
            if (flavor := self._kept("ResourceFlavor", name, self.api.resource_flavor)) is not None
        }
        return KueueFacts(flavors=flavors)

    def _kept(self, kind: str, name: str, read: Callable[[str], T]) -> T:
        now = self.clock()
        with self.lock:
            found = self.kept.get((kind, name))
        if found is not None and now - found[0] < CACHE_SECONDS:
            value: T = found[1]
            return value
        value = read(name)  # outside the lock: one slow answer must not hold every worker
        with self.lock:
            self.kept[(kind, name)] = (now, value)
        return value
