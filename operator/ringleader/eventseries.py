"""Repeated events folded into one Event object with a count, as Kubernetes' own controllers do.

The same event again (type, reason, regarding object and note), within a few minutes, is a
series: the first is created, the second turns it into a series (`series.count: 2`), later ones
are only counted and their count written on a heartbeat, as client-go's recorder does. Events
that differ only in their note (a pod's name, a count) stay apart, so each says what happened,
up to SIMILAR_LIMIT of them in the window; more fold into one series "(combined from similar
events)", as client-go's older correlator does. A job whose pods flap (a burst of deletions, a
crash loop) then costs a bounded number of Events and patches instead of one per flap.

`EventSeries` is the bookkeeping only (pure, thread-safe): KubeApi asks it what to write.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum

# Events further apart than this start a new Event object (client-go: 6 minutes).
SERIES_WINDOW_SECONDS = 360.0
# The most often one series' count is written (client-go: every 30 minutes; a training job's
# user watches `kubectl describe` for minutes, not hours).
HEARTBEAT_SECONDS = 10.0

# Distinct notes of one type and reason in the window before the rest are combined.
SIMILAR_LIMIT = 10
COMBINED = "(combined from similar events)"

SimilarKey = tuple[str, ...]  # namespace, name, uid of the regarding object, type, reason
SeriesKey = tuple[str, ...]  # a SimilarKey and the note


class Write(Enum):
    """What to do with one occurrence."""

    CREATE = "create"  # a new Event object
    PATCH = "patch"  # the existing one's series count
    NONE = "none"  # counted, written on a later heartbeat


@dataclass
class Series:
    """One Event object and the occurrences it stands for."""

    name: str | None  # the Event's name, once created
    count: int
    last_seen: float
    written_count: int
    written_at: float


@dataclass(frozen=True)
class Due:
    """A series whose count must be written: its Event's namespace and name, count, time."""

    namespace: str
    name: str
    count: int
    last_seen: float


class EventSeries:
    """The series of every regarding object seen in the window."""

    def __init__(self) -> None:
        self._series: dict[SeriesKey, Series] = {}
        self._lock = threading.Lock()

    def series_of(self, similar: SimilarKey, note: str, now: float) -> tuple[SeriesKey, str]:
        """The series an event with this note belongs to, and the note to create it with: its
        own, or the combined one's when SIMILAR_LIMIT other notes are already in the window."""
        own, cutoff = (*similar, note), now - SERIES_WINDOW_SECONDS
        with self._lock:  # reads only: observe, next, forgets what the window left behind
            held = self._series.get(own)
            if held is not None and held.last_seen >= cutoff:
                return own, note
            others = sum(
                1
                for key, series in self._series.items()
                if key[:-1] == similar and key[-1] != COMBINED and series.last_seen >= cutoff
            )
        if others < SIMILAR_LIMIT:
            return own, note
        return (*similar, COMBINED), f"{COMBINED}: {note}"[:1024]

    def observe(self, key: SeriesKey, now: float) -> tuple[Write, int]:
        """Record an occurrence; say what to write now and the count to write."""
        with self._lock:
            self._forget_older_than(now - SERIES_WINDOW_SECONDS)
            series = self._series.get(key)
            if series is None or series.name is None:
                # New, or its Event could not be created: (try to) create one.
                self._series[key] = Series(None, 1, now, 1, now)
                return Write.CREATE, 1
            series.count += 1
            series.last_seen = now
            if series.written_count == 1 or now - series.written_at >= HEARTBEAT_SECONDS:
                series.written_count, series.written_at = series.count, now
                return Write.PATCH, series.count
            return Write.NONE, series.count

    def created(self, key: SeriesKey, name: str) -> None:
        """The series' Event exists under this name."""
        with self._lock:
            if key in self._series:
                self._series[key].name = name

    def name_of(self, key: SeriesKey) -> str | None:
        """The series' Event name, if it was created."""
        with self._lock:
            series = self._series.get(key)
            return series.name if series else None

    def forget_event(self, name: str) -> None:
        """The Event is gone: its series ends, the next occurrence creates a new one."""
        with self._lock:
            for key in [k for k, series in self._series.items() if series.name == name]:
                del self._series[key]

    def due(self, now: float) -> list[Due]:
        """Series with occurrences not yet written, their last write a heartbeat ago; they are
        taken as written."""
        found = []
        with self._lock:
            for key, series in self._series.items():
                behind = series.count > series.written_count
                if series.name and behind and now - series.written_at >= HEARTBEAT_SECONDS:
                    series.written_count, series.written_at = series.count, now
                    found.append(Due(key[0], series.name, series.count, series.last_seen))
        return found

    def _forget_older_than(self, cutoff: float) -> None:
        stale = [key for key, series in self._series.items() if series.last_seen < cutoff]
        for key in stale:
            del self._series[key]
