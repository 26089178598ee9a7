"""KubeApi.list_objects: a watch's listing read a page at a time, each item told its kind (a
List's items do not say it), the label selector sent only when there is one."""

from __future__ import annotations

from typing import Any

from ringleader.kube import LIST_PAGE_SIZE, KubeApi, Selection

Obj = dict[str, Any]


class PagedRest:
    """Answers a list call with the next page; records each call's path and query."""

    def __init__(self, pages: list[Obj]) -> None:
        self.pages = pages
        self.calls: list[tuple[str, Obj]] = []

    def request(self, method: str, path: str, query: Obj | None = None, **_: Any) -> Obj:
        assert method == "GET"
        self.calls.append((path, dict(query or {})))
        return self.pages.pop(0)


def page(names: list[str], version: str, token: str | None = None) -> Obj:
    items = [{"metadata": {"name": name}} for name in names]
    return {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": version, "continue": token},
        "items": items,
    }


def test_pages_follow_the_continue_token_and_each_item_says_its_kind() -> None:
    rest = PagedRest([page(["a", "b"], "7", token="next"), page(["c"], "7")])
    where = Selection("v1", "pods", "team", "app.kubernetes.io/managed-by=ringleader")
    pages = list(KubeApi(rest).list_objects(where))  # type: ignore[arg-type]
    assert [[i["metadata"]["name"] for i in items] for items, _ in pages] == [["a", "b"], ["c"]]
    assert [version for _, version in pages] == ["7", "7"]
    assert all(i["kind"] == "Pod" and i["apiVersion"] == "v1" for items, _ in pages for i in items)
    (first_path, first), (_, second) = rest.calls
    assert first_path == "/api/v1/namespaces/team/pods"
    assert first["labelSelector"] == "app.kubernetes.io/managed-by=ringleader"
    assert first["limit"] == LIST_PAGE_SIZE and first["continue"] is None
    assert second["continue"] == "next"


def test_every_object_of_a_cluster_scoped_or_custom_resource() -> None:
    rest = PagedRest([page([], "3")])
    api = KubeApi(rest)  # type: ignore[arg-type]
    assert list(api.list_objects(Selection("v1", "nodes", None, ""))) == [([], "3")]
    path, query = rest.calls[0]
    assert path == "/api/v1/nodes"
    assert query["labelSelector"] is None  # None is left out of the URL: no selector at all
    where = Selection("scheduling.x-k8s.io/v1alpha1", "podgroups", "team", "x=y")
    assert where.path() == "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/team/podgroups"


def test_the_watch_goes_on_from_the_version_with_the_same_selector() -> None:
    watched: list[tuple[str, Obj]] = []

    class WatchingRest:
        def watch(self, path: str, query: Obj, timeout: object) -> list[Obj]:
            watched.append((path, query))
            return [{"type": "ADDED", "object": {"metadata": {"name": "a"}}}]

    where = Selection("v1", "services", None, "app.kubernetes.io/managed-by=ringleader")
    api = KubeApi(WatchingRest())  # type: ignore[arg-type]
    assert [e["type"] for e in api.watch_objects(where, since="41")] == ["ADDED"]
    ((path, query),) = watched
    assert path == "/api/v1/services"
    assert query["labelSelector"] == "app.kubernetes.io/managed-by=ringleader"
    assert query["resourceVersion"] == "41" and query["allowWatchBookmarks"] == "true"
