"""Objects of an optional API (the gang schedulers' PodGroups, Kueue's Workloads) watched while
it is served, and looked for again while it is not.

kopf watches a custom resource for as long as its CRD exists; but when a watch is answered 404
before kopf has seen the CRD go (a scheduler uninstalled), kopf 1.45 ends the whole operator.
These APIs belong to optional schedulers that come and go, so they get a watch of their own, in
a thread, to which "not found" means "not installed now": it delivers nothing until the API is
back, looking again every `idle_seconds`.

What it delivers goes where kopf's events go (handlers._child_changed): the cache, then the job's
queue. A listing's items come with type None, as kopf's do, so the relister runs after it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3

from ringleader.apiclient import ApiError
from ringleader.kube import RetryableError

log = logging.getLogger("ringleader.optionalwatch")

Obj = dict[str, Any]
Listing = tuple[list[Obj], str]  # the items, and the resourceVersion to watch from
Deliver = Callable[[str | None, Obj], None]  # (event type, object); None: listed


@dataclass(frozen=True)
class Source:
    """The API calls of one watch: list everything, then watch from a resourceVersion."""

    name: str  # for the log, e.g. podgroups.scheduling.x-k8s.io
    list_all: Callable[[], Listing]
    watch_from: Callable[[str], Iterable[Obj]]  # raw watch events; ends when the server ends it


class OptionalWatch:
    """One API's objects (of one namespace, or all), delivered while it is served."""

    def __init__(
        self, source: Source, deliver: Deliver, idle_seconds: float = 10.0, backoff: float = 5.0
    ) -> None:
        self.source, self.deliver = source, deliver
        self.idle_seconds, self.backoff = idle_seconds, backoff
        self.stopped = threading.Event()
        self.served: bool | None = None  # unknown until the first answer

    def start(self) -> threading.Thread:
        """Run in a daemon thread (a watch blocks; the operator's exit must not wait for it)."""
        thread = threading.Thread(target=self.run, name=f"watch {self.source.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """End after the current request."""
        self.stopped.set()

    def run(self) -> None:
        """List and watch until stopped; wait while the API is not served or failing."""
        while not self.stopped.is_set():
            try:
                self._list_and_watch()
                continue  # the watch expired (410): list again at once
            except ApiError as error:
                if error.status == 404:
                    self._not_served()
                    self.stopped.wait(self.idle_seconds)
                    continue
                log.warning(
                    "watch of %s failed: %s %s", self.source.name, error.status, error.reason
                )
            except (RetryableError, urllib3.exceptions.HTTPError) as error:
                log.warning("watch of %s: no answer: %s", self.source.name, error)
            self.stopped.wait(self.backoff)

    def _not_served(self) -> None:
        if self.served is not False:  # said once per change, not at every look
            log.info(
                "%s not served: looking again every %.0fs", self.source.name, self.idle_seconds
            )
        self.served = False

    def _list_and_watch(self) -> None:
        items, version = self.source.list_all()
        if self.served is False:
            log.info("%s served again: watching it", self.source.name)
        self.served = True
        for item in items:
            self.deliver(None, item)
        for event in self._events(version):
            self.deliver(event["type"], event["object"])

    def _events(self, version: str) -> Iterator[Obj]:
        """The watch's events until it ends; returns on 410 (expired: list again)."""
        while not self.stopped.is_set():
            try:
                for event in self.source.watch_from(version):
                    if self.stopped.is_set():
                        return
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") != "BOOKMARK":
                        yield event
            except ApiError as error:
                if error.status == 410:
                    return
                raise
