"""listwatch: objects listed a page at a time, then watched, while their API is served; a 404
(a scheduler uninstalled) waits for the API to come back instead of ending anything; 410 lists
again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ringleader.apiclient import ApiError
from ringleader.listwatch import ListWatch, Page, Source

Obj = dict[str, Any]


def group(name: str, version: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def event(kind: str, name: str, version: str) -> Obj:
    return {"type": kind, "object": group(name, version)}


class Api:
    """A scripted API server: each list and each watch takes the next answer of its script (an
    exception is raised; a listing is one page, or a list of pages); once the scripts run out,
    the watch is stopped."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.watched_from: list[str] = []
        self.delivered: list[tuple[str | None, str]] = []
        self.listed_pages = 0
        self.watch: ListWatch | None = None

    def list_pages(self) -> list[Page]:
        answer = self._next(self.lists)
        return answer if isinstance(answer, list) else [answer]

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

    def deliver(self, kind: str | None, objs: list[Obj]) -> None:
        if kind is None:
            self.listed_pages += 1
        else:
            assert len(objs) == 1  # a watch event is delivered alone
        self.delivered += [(kind, obj["metadata"]["name"]) for obj in objs]

    def run(self) -> None:
        source = Source("podgroups.test", self.list_pages, self.watch_from)
        self.watch = ListWatch(source, self.deliver, idle_seconds=0, backoff=0)
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


def test_a_paged_listing_is_delivered_page_by_page_and_watched_from_its_version() -> None:
    api = Api(
        lists=[[([group("a", "3"), group("b", "4")], "9"), ([group("c", "5")], "9")]],
        watches=[[event("ADDED", "d", "10")]],
    )
    api.run()
    assert api.delivered[:4] == [(None, "a"), (None, "b"), (None, "c"), ("ADDED", "d")]
    assert api.watched_from[:1] == ["9"]


def test_an_empty_listing_is_still_delivered_so_that_the_relister_runs() -> None:
    api = Api(lists=[([], "1")], watches=[])
    api.run()
    assert api.listed_pages >= 1
    assert api.delivered == []


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


def test_an_unexpected_error_mid_watch_lists_again_instead_of_ending_the_thread() -> None:
    api = Api(
        lists=[([group("f", "3")], "3"), ([group("f", "6")], "6")],
        watches=[ValueError("a line that is not JSON"), [event("MODIFIED", "f", "7")]],
    )
    api.run()
    assert api.delivered[:3] == [(None, "f"), (None, "f"), ("MODIFIED", "f")]
    assert api.watched_from[:2] == ["3", "6"]


def test_stop_ends_the_thread_while_it_waits_for_the_api() -> None:
    source = Source(
        "podgroups.test",
        list_pages=lambda: (_ for _ in ()).throw(ApiError(status=404)),
        watch_from=lambda version: iter(()),
    )
    watch = ListWatch(source, lambda kind, objs: None, idle_seconds=3600)
    thread = watch.start()
    watch.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
