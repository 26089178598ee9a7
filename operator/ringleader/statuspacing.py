"""Status writes that only recount the workers of a phase wait a moment (the controller's pacing).

While workers come up one after another ("3/8 ready", then "4/8 ready"...), or are replaced in a
burst, every pass would patch the job to say the next count: a write per pod, and an answer the
next pass has to wait for. A patch that changes nothing but those counts (and the message that
states them), in a pass that does nothing else, waits until HOLD_SECONDS have passed since the
operator last wrote the job's status; a phase change, a condition's new reason, and every pass
that creates, deletes or announces something are written at once. The pass the hold's timer
brings writes the counts as they are then: what was held is said late, never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
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


# What a plan may hold besides the recount and still do nothing else.
NOT_DOING: Final = frozenset({"status_patch", "requeue_after"})


def does_nothing_else(plan: Plan) -> bool:
    """The plan writes its status patch and nothing more (a timer to come back may be set)."""
    return not any(getattr(plan, f.name) for f in fields(plan) if f.name not in NOT_DOING)


class StatusPacer:
    """When each job's status was last written by the controller, and how long a recount that
    comes after it waits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._written: dict[Key, float] = {}
        self._lock = threading.Lock()  # passes of different jobs run in different threads

    def hold_for(self, key: Key, body: Mapping[str, Any], plan: Plan) -> float | None:
        """Seconds this plan's recount waits, or None: carry the plan out now."""
        recount = only_recounts(body.get("status") or {}, plan.status_patch)
        if not (recount and does_nothing_else(plan)):
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
