"""The controller's queue of job keys: each key once, never two passes of one job at a time, and
jobs with a slot to fill ahead of the others.

In a burst (a hundred workers deleted at once), every job is queued several times: once when its
pod starts leaving (a status to write), once when the pod is gone (a replacement to make), and
again when the replacement runs. Taken in arrival order, the pass that makes a replacement waits
behind the other jobs' status writes; a worker missing is what stops a job training, so a key
queued because a child went away goes ahead of the rest (`urgent`).
"""

from __future__ import annotations

import asyncio
from collections import deque

from ringleader.cache import Key


class JobQueue:
    """Keys to reconcile, in two lanes (urgent first, each in arrival order), deduplicated."""

    def __init__(self) -> None:
        self.queued: dict[Key, bool] = {}  # key -> urgent
        self.running: set[Key] = set()
        self.dirty: dict[Key, bool] = {}  # added while running: queued again when done
        self._urgent: deque[Key] = deque()
        self._normal: deque[Key] = deque()
        self._ready = asyncio.Event()

    def add(self, key: Key, urgent: bool = False) -> None:
        """Queue a key (once), or mark it to run again if its pass is under way."""
        if key in self.running:
            self.dirty[key] = self.dirty.get(key, False) or urgent
            return
        queued_urgent = self.queued.get(key)
        if queued_urgent is None:
            self.queued[key] = urgent
            (self._urgent if urgent else self._normal).append(key)
        elif urgent and not queued_urgent:
            # Its entry in the normal lane stays behind, and is skipped when reached.
            self.queued[key] = True
            self._urgent.append(key)
        else:
            return
        self._ready.set()

    async def get(self) -> Key:
        """The next key; it counts as running until done() is called with it."""
        while (key := self._pop()) is None:
            self._ready.clear()
            await self._ready.wait()
        self.running.add(key)
        return key

    def done(self, key: Key) -> None:
        """The key's pass is over: queue it again if it was asked for meanwhile."""
        self.running.discard(key)
        if (urgent := self.dirty.pop(key, None)) is not None:
            self.add(key, urgent)

    def __len__(self) -> int:
        return len(self.queued)

    def _pop(self) -> Key | None:
        for lane in (self._urgent, self._normal):
            while lane:
                key = lane.popleft()
                if self.queued.pop(key, None) is not None:
                    return key
        return None
