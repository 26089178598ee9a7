"""The operator's watches of its jobs' children and of nodes: list, then watch from the list's
version, in a thread of their own; kopf watches only the jobs.

Why not kopf's watches: kopf (1.45) sends no label selector unless told, so it would list and
watch every pod, Service and claim of the cluster, not only ours; it waits out a batching window
(0.1 s) on each object before its handler sees an event, keeps a memory per object and deep
copies every body to detect changes our handlers never read. And for an optional API (the gang
schedulers' PodGroups, Kueue's Workloads) a watch answered 404 before kopf has seen the CRD go
(a scheduler uninstalled) ends the whole operator. Here "not found" means "not installed now":
the watch delivers nothing until the API is back, looking again every `idle_seconds`.

A listing comes a page at a time (kube.LIST_PAGE_SIZE items), each page delivered with type
None, even an empty one (the relister runs after a listing: it finds what went while nobody
watched); a watch event comes as a list of one object.
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

log = logging.getLogger("ringleader.listwatch")

Obj = dict[str, Any]
Page = tuple[list[Obj], str]  # the items, and the list's resourceVersion to watch from
Deliver = Callable[[str | None, list[Obj]], None]  # (event type, objects); None: a listed page


@dataclass(frozen=True)
class Source:
    """The API calls of one watch: list everything a page at a time, then watch from a
    resourceVersion."""

    name: str  # for the log, e.g. podgroups.scheduling.x-k8s.io
    list_pages: Callable[[], Iterable[Page]]
    watch_from: Callable[[str], Iterable[Obj]]  # raw watch events; ends when the server ends it


class ListWatch:
    """One resource's objects (of one namespace, or all), delivered while its API is served."""

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
            except Exception:  # a watch thread that ends leaves the operator blind
                log.exception("watch of %s broke: listing again", self.source.name)
            self.stopped.wait(self.backoff)

    def _not_served(self) -> None:
        if self.served is not False:  # said once per change, not at every look
            log.info(
                "%s not served: looking again every %.0fs", self.source.name, self.idle_seconds
            )
        self.served = False

    def _list_and_watch(self) -> None:
        version = ""  # the last page's: every page of a listing has the same
        for number, (items, page_version) in enumerate(self.source.list_pages()):
            if number == 0 and self.served is False:
                log.info("%s served again: watching it", self.source.name)
            self.served = True
            version = page_version
            self.deliver(None, items)
        for event in self._events(version):
            self.deliver(event["type"], [event["object"]])

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
