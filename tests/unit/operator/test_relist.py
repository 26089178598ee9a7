"""The cache's side of a relist: what a listing lacks goes, unless it changed since the listing
began (then the listing may lack it only for being older)."""

from __future__ import annotations

from typing import Any

from ringleader import constants as c
from ringleader.cache import Cache

KEY = ("ns", "train")


def job() -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "train"}, "spec": {}}


def child(kind: str, name: str) -> dict[str, Any]:
    labels = {c.LABEL_JOB_NAME: "train", c.LABEL_MANAGED_BY: c.MANAGED_BY}
    return {"kind": kind, "metadata": {"namespace": "ns", "name": name, "labels": labels}}


def filled() -> Cache:
    cache = Cache()
    cache.put_job(job())
    for name in ("train-rdzv", "train-worker-0-a0", "train-worker-1-a0"):
        cache.put_child(child("Pod", name))
    return cache


def names(cache: Cache) -> list[str]:
    return sorted(ch["metadata"]["name"] for ch in cache.children(KEY))


def test_a_child_the_listing_lacks_is_dropped_and_its_job_reconciled() -> None:
    cache = filled()
    before = cache.snapshot()
    listed = {(KEY, ("Pod", "train-rdzv")), (KEY, ("Pod", "train-worker-0-a0"))}
    assert cache.drop_unlisted(before, {KEY}, listed) == {KEY}
    assert names(cache) == ["train-rdzv", "train-worker-0-a0"]


def test_nothing_changes_when_the_listing_has_everything() -> None:
    cache = filled()
    before = cache.snapshot()
    listed = {(KEY, ("Pod", n)) for n in ("train-rdzv", "train-worker-0-a0", "train-worker-1-a0")}
    assert cache.drop_unlisted(before, {KEY}, listed) == set()
    assert len(names(cache)) == 3


def test_a_child_written_after_the_listing_began_stays() -> None:
    cache = filled()
    before = cache.snapshot()
    cache.put_child(child("Pod", "train-worker-1-a0"))  # the watch: a newer body
    cache.put_child(child("Pod", "train-worker-2-a0"))  # created after the listing began
    assert cache.drop_unlisted(before, {KEY}, {(KEY, ("Pod", "train-rdzv"))}) == {KEY}
    assert names(cache) == ["train-rdzv", "train-worker-1-a0", "train-worker-2-a0"]


def test_a_job_the_listing_lacks_goes_with_its_children() -> None:
    cache = filled()
    before = cache.snapshot()
    assert cache.drop_unlisted(before, set(), set()) == {KEY}
    assert cache.job(KEY) is None
    assert cache.children(KEY) == []


def test_a_job_updated_after_the_listing_began_stays() -> None:
    cache = filled()
    before = cache.snapshot()
    cache.put_job(job())
    listed = {(KEY, ("Pod", n)) for n in ("train-rdzv", "train-worker-0-a0", "train-worker-1-a0")}
    assert cache.drop_unlisted(before, set(), listed) == set()
    assert cache.job(KEY) is not None


def test_a_listing_of_some_namespaces_drops_nothing_elsewhere() -> None:
    cache = filled()
    before = cache.snapshot()
    assert cache.drop_unlisted(before, set(), set(), namespaces={"other"}) == set()
    assert len(names(cache)) == 3
    assert cache.drop_unlisted(before, set(), set(), namespaces={"ns", "other"}) == {KEY}


def test_a_child_of_a_kind_the_listing_does_not_cover_stays() -> None:
    cache = filled()
    cache.put_child(child("PodGroup", "train"))
    before = cache.snapshot()
    listed = {(KEY, ("Pod", n)) for n in ("train-rdzv", "train-worker-0-a0", "train-worker-1-a0")}
    assert cache.drop_unlisted(before, {KEY}, listed) == set()
    assert "train" in names(cache)
