"""A minimal informer: list, then watch, keep every object of one kind in memory."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import watch

from .kubeapi import raw

log = logging.getLogger(__name__)
WATCH_SECONDS = 60


class WatchCache:
    """All objects listed by list_call (a *_for_all_namespaces method), kept current."""

    def __init__(self, list_call: Callable[..., Any], on_change: threading.Event) -> None:
        self.list_call, self.on_change = list_call, on_change
        self.synced = threading.Event()
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> list[dict[str, Any]]:
        """The objects as last seen."""
        with self._lock:
            return list(self._items.values())

    def _relist(self) -> str:
        body = raw(self.list_call(_preload_content=False))
        with self._lock:
            self._items = {item["metadata"]["uid"]: item for item in body["items"]}
        self.synced.set()
        self.on_change.set()
        return str(body["metadata"]["resourceVersion"])

    def _apply(self, event: dict[str, Any]) -> bool:
        """Apply one watch event; False when the watch must restart from a fresh list."""
        kind, item = event["type"], event["raw_object"]
        if kind == "ERROR":
            return False
        if kind == "BOOKMARK":
            return True
        uid = item["metadata"]["uid"]
        with self._lock:
            if kind == "DELETED":
                self._items.pop(uid, None)
            else:
                self._items[uid] = item
        self.on_change.set()
        return True

    def _watch(self, version: str, stop: threading.Event) -> None:
        stream = watch.Watch().stream(
            self.list_call, resource_version=version, timeout_seconds=WATCH_SECONDS
        )
        for event in stream:
            if stop.is_set() or not self._apply(event):
                return

    def run(self, stop: threading.Event) -> None:
        """List and watch until stop is set; relist after any error."""
        while not stop.is_set():
            try:
                self._watch(self._relist(), stop)
            except Exception as error:  # the API restarting, a 410 Gone: start over
                log.debug("watch of %s restarts: %s", self.list_call.__name__, error)
                time.sleep(1)
