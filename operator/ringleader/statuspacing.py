"""Status writes that only recount the workers of a phase wait a moment (the controller's pacing).

While workers come up one after another ("3/8 ready", then "4/8 ready"...), or are replaced in a
burst, every pass would patch the job to say the next count: a write per pod, and an answer the
next pass has to wait for. A patch that changes nothing but those counts (and the message that
states them) waits until HOLD_SECONDS have passed since the operator last wrote the job's status;
the rest of its pass goes ahead without it (a replacement pod is created at once, its recount
said later). A phase change, a condition's new reason, a new attempt or any other field is
written at once, with the pass. The pass the hold's timer brings writes the counts as they are
then: what was held is said late, never lost.

A pass that writes no status makes its children without the resourceVersion check the status
write carries (reconcile.execute_plan): as every pass that has nothing to say in status does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from ringleader.cache import Key
from ringleader.reconcile import Plan

HOLD_SECONDS: Final = 2.0
# What a pass changes when only the number of workers in each state moved.
COUNT_FIELDS: Final = frozenset({"replicas", "readyReplicas", "workers", "worldSize", "conditions"})


def only_recounts(old: Mapping[str, Any], patch: Mapping[str, Any] | None) -> bool:
    """The status patch changes counts (and the conditions' messages that state them) only:
    the phase and every condition's status, reason and transition time stay."""
    if not patch or not patch.keys() <= COUNT_FIELDS:
        return False
    if "conditions" not in patch:
        return True
    return _but_messages(old.get("conditions") or []) == _but_messages(patch["conditions"] or [])


def _but_messages(conditions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if k != "message"} for x in conditions]


class StatusPacer:
    """When each job's status was last written by the controller, and how long a recount that
    comes after it waits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._written: dict[Key, float] = {}
        self._lock = threading.Lock()  # passes of different jobs run in different threads

    def pace(self, key: Key, body: Mapping[str, Any], plan: Plan) -> Plan:
        """The plan to carry out now: as it is, or without a recount that must wait, and back
        (requeue_after) when it may be written."""
        hold = self.hold_for(key, body, plan)
        if hold is None:
            return plan
        again = hold if plan.requeue_after is None else min(hold, plan.requeue_after)
        return replace(plan, status_patch=None, requeue_after=again)

    def hold_for(self, key: Key, body: Mapping[str, Any], plan: Plan) -> float | None:
        """Seconds this plan's status patch waits (a recount soon after a write), or None."""
        if not only_recounts(body.get("status") or {}, plan.status_patch):
            return None
        with self._lock:
            last = self._written.get(key)
        if last is None:
            return None
        left = last + HOLD_SECONDS - self.clock()
        return left if left > 0 else None

    def wrote(self, key: Key) -> None:
        """The job's status was just written."""
        with self._lock:
            self._written[key] = self.clock()

    def forget(self, key: Key) -> None:
        """The job is gone."""
        with self._lock:
            self._written.pop(key, None)
