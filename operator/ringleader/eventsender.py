"""Events written off the reconcile path, as client-go's event broadcaster writes them.

An Event is what `kubectl describe` shows of a decision; the decision itself is the status, written
first. A pass that waited for its event's write took one more round trip to the API server before
its next job could start: in a burst (a hundred workers replaced at once) every pass does, and the
passes that make the replacements queue behind them. Here a pass hands its events to a few sender
threads and goes on. Each job's events go through one thread, in the order they were posted
(the second of a series counts up the Event the first created). An event still queued when the
operator dies is lost, as one is when the operator dies between the status and the event.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger("ringleader.events")

SENDERS: Final = 4
Write = Callable[[], None]


@dataclass(frozen=True)
class Occurrence:
    """An event as it was posted: what it regards and says, and when (a write that comes later
    still dates it, and counts it in its series, from then)."""

    regarding: dict[str, Any]  # the job's metadata
    type: str  # Normal or Warning
    reason: str
    note: str
    at: float  # time.monotonic(), for the series' windows
    time: str  # a MicroTime, the Event's eventTime


class EventSender:
    """A few threads writing events; each lane (a job) always through the same thread."""

    def __init__(self, senders: int = SENDERS) -> None:
        self._queues: list[queue.SimpleQueue[Write | None]] = [
            queue.SimpleQueue() for _ in range(senders)
        ]
        self._threads = [
            threading.Thread(target=self._send, args=(q,), name=f"events-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, lane: Hashable, write: Write) -> None:
        """Write later, after every write submitted before on the same lane."""
        self._queues[hash(lane) % len(self._queues)].put(write)

    def stop(self, timeout: float) -> None:
        """Write what is queued (within the timeout, all threads together), then end."""
        for q in self._queues:
            q.put(None)  # after what is queued
        for thread in self._threads:
            thread.join(timeout / len(self._threads))

    @staticmethod
    def _send(q: queue.SimpleQueue[Write | None]) -> None:
        while (write := q.get()) is not None:
            try:
                write()
            except Exception:  # a lost event must not end the thread that writes the others
                log.exception("an event could not be written")
