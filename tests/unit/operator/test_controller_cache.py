"""The controller's cache: never forgetting newer state, nor holding a replaced pod."""

from __future__ import annotations

from typing import Any

from ringleader.cache import Cache


def pod(name: str, phase: str, uid: str | None = None) -> dict[str, Any]:
    labels = {"ringleader.dev/job-name": "digits"}
    meta = {"name": name, "namespace": "team-a", "labels": labels}
    if uid:
        meta["uid"] = uid
    return {"kind": "Pod", "metadata": meta, "status": {"phase": phase}}


def test_what_the_operator_created_never_replaces_what_the_watch_already_delivered() -> None:
    cache = Cache()
    cache.put_child(pod("digits-worker-0-a0", "Running"))
    cache.put_child(pod("digits-worker-0-a0", "Pending"), only_if_absent=True)
    (cached,) = cache.children(("team-a", "digits"))
    assert cached["status"]["phase"] == "Running"


def test_a_deleted_child_leaves_the_cache() -> None:
    cache = Cache()
    key = cache.put_child(pod("digits-rdzv", "Running"))
    cache.put_child(pod("digits-rdzv", "Running"), deleted=True)
    assert key == ("team-a", "digits")
    assert cache.children(key) == []


def test_a_force_deleted_pod_stays_gone_whatever_the_watch_still_reports_of_it() -> None:
    cache = Cache()
    key = cache.put_child(pod("digits-worker-1-a0", "Running", uid="old"))
    assert key is not None
    cache.forget_pod(key, "digits-worker-1-a0")
    cache.put_child(pod("digits-worker-1-a0", "Running", uid="old"))  # deletionTimestamp set
    assert cache.children(key) == []
    cache.put_child(pod("digits-worker-1-a0", "Pending"), only_if_absent=True)  # its replacement
    cache.put_child(pod("digits-worker-1-a0", "Running", uid="old"), deleted=True)
    (held,) = cache.children(key)  # the report of the old pod's deletion spares the new one
    assert held["status"]["phase"] == "Pending"
    cache.put_child(pod("digits-worker-1-a0", "Running", uid="new"))
    cache.put_child(pod("digits-worker-1-a0", "Running", uid="old"), deleted=True)  # late again
    assert [p["metadata"]["uid"] for p in cache.children(key)] == ["new"]
    cache.put_child(pod("digits-worker-1-a0", "Running", uid="new"), deleted=True)
    assert cache.children(key) == []


def test_a_late_report_of_a_replaced_pod_never_hides_its_replacement() -> None:
    # kopf's streams are per uid: the old pod's last reports may come after the new one's.
    cache = Cache()
    old, new = (
        pod("digits-worker-1-a0", "Running", uid="old"),
        pod("digits-worker-1-a0", "Pending", uid="new"),
    )
    old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"] = "41", "57"
    key = cache.put_child(new)
    assert key is not None
    cache.put_child(old)  # its deletionTimestamp, reported late
    cache.put_child(old, deleted=True)
    assert [p["metadata"]["uid"] for p in cache.children(key)] == ["new"]
    newer = {**new, "metadata": {**new["metadata"], "uid": "newer", "resourceVersion": "60"}}
    cache.put_child(newer)  # a later object of that name replaces it
    assert [p["metadata"]["uid"] for p in cache.children(key)] == ["newer"]


def test_a_pod_the_operator_made_replaces_the_older_one_still_held_under_its_name() -> None:
    cache = Cache()
    old = pod("digits-worker-1-a0", "Failed", uid="old")
    old["metadata"]["resourceVersion"] = "41"
    key = cache.put_child(old)
    assert key is not None
    made = pod("digits-worker-1-a0", "Pending", uid="new")  # the API server's answer to create
    made["metadata"]["resourceVersion"] = "57"
    cache.put_child(made, only_if_absent=True)
    cache.put_child(old, deleted=True)  # the old one's DELETED, after
    assert [p["metadata"]["uid"] for p in cache.children(key)] == ["new"]
    cache.put_child(made, deleted=True)  # reported only by its DELETED (kopf keeps the latest)
    assert cache.children(key) == []


def test_a_status_write_is_held_in_the_cache_until_the_watch_reports_a_newer_body() -> None:
    cache = Cache()
    meta = {"namespace": "team-a", "name": "digits", "resourceVersion": "7"}
    key = cache.put_job({"metadata": meta, "status": {"hang": {"step": 1}}})
    read = cache.job(key)  # what a pass decides from (the cache's copy)
    assert read is not None
    written = {"metadata": {**meta, "resourceVersion": "8"}, "status": {"phase": "Running"}}
    cache.record_status_write(key, read, written)
    assert cache.job(key) == written  # the next pass names resourceVersion 8
    newer = {"metadata": {**meta, "resourceVersion": "9"}, "status": {"phase": "Restarting"}}
    cache.put_job(newer)
    cache.record_status_write(key, read, {**written, "status": {"phase": "Failed"}})
    assert cache.job(key) == newer  # a write made on an older body never replaces a newer one
