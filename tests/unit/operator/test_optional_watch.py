"""optionalwatch: PodGroups listed and watched while their API is served; a 404 (the scheduler
uninstalled) waits for the API to come back instead of ending anything; 410 lists again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ringleader.apiclient import ApiError
from ringleader.optionalwatch import Listing, OptionalWatch, Source

Obj = dict[str, Any]


def group(name: str, version: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def event(kind: str, name: str, version: str) -> Obj:
    return {"type": kind, "object": group(name, version)}


class Api:
    """A scripted API server: each list and each watch takes the next answer of its script (an
    exception is raised); once the scripts run out, the watch is stopped."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.watched_from: list[str] = []
        self.delivered: list[tuple[str | None, str]] = []
        self.watch: OptionalWatch | None = None

    def list_all(self) -> Listing:
        return self._next(self.lists)  # type: ignore[no-any-return]

    def watch_from(self, version: str) -> Iterator[Obj]:
        self.watched_from.append(version)
        yield from self._next(self.watches)

    def _next(self, script: list[Any]) -> Any:
        if not script:
            assert self.watch is not None
            self.watch.stop()
            return [] if script is self.watches else ([], "0")
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def deliver(self, kind: str | None, obj: Obj) -> None:
        self.delivered.append((kind, obj["metadata"]["name"]))

    def run(self) -> None:
        source = Source("podgroups.test", self.list_all, self.watch_from)
        self.watch = OptionalWatch(source, self.deliver, idle_seconds=0, backoff=0)
        thread = self.watch.start()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_a_listing_is_delivered_as_listed_then_each_event_and_the_watch_goes_on_from_the_last() -> (
    None
):
    api = Api(
        lists=[([group("a", "5")], "7")],
        watches=[
            [event("MODIFIED", "a", "8"), event("BOOKMARK", "", "9")],
            [event("DELETED", "a", "10")],
        ],
    )
    api.run()
    assert api.delivered[:3] == [(None, "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    # A watch the server ended goes on from the newest version seen, a bookmark's too.
    assert api.watched_from[:2] == ["7", "9"]


def test_an_api_not_served_is_waited_for_and_watched_once_it_is() -> None:
    not_found = ApiError(status=404, reason="Not Found")
    api = Api(
        lists=[not_found, not_found, ([group("a", "3")], "3")],
        watches=[[event("ADDED", "b", "4")]],
    )
    api.run()
    assert api.delivered[:2] == [(None, "a"), ("ADDED", "b")]


def test_a_crd_deleted_mid_watch_ends_the_watch_not_the_thread_and_it_comes_back() -> None:
    api = Api(
        lists=[([], "1"), ApiError(status=404), ([group("c", "20")], "20")],
        watches=[ApiError(status=404), [event("MODIFIED", "c", "21")]],
    )
    api.run()
    assert api.delivered[:2] == [(None, "c"), ("MODIFIED", "c")]


def test_an_expired_version_lists_again() -> None:
    api = Api(
        lists=[([], "1"), ([group("d", "50")], "50")],
        watches=[ApiError(status=410, reason="Expired"), []],
    )
    api.run()
    assert api.delivered[:1] == [(None, "d")]
    assert api.watched_from[:2] == ["1", "50"]


def test_a_failing_server_is_tried_again() -> None:
    api = Api(
        lists=[ApiError(status=500), ([group("e", "2")], "2")],
        watches=[],
    )
    api.run()
    assert api.delivered[:1] == [(None, "e")]


def test_stop_ends_the_thread_while_it_waits_for_the_api() -> None:
    source = Source(
        "podgroups.test",
        list_all=lambda: (_ for _ in ()).throw(ApiError(status=404)),
        watch_from=lambda version: iter(()),
    )
    watch = OptionalWatch(source, lambda kind, obj: None, idle_seconds=3600)
    thread = watch.start()
    watch.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
