"""The cache keeps what decisions read: not who last wrote each field."""

from __future__ import annotations

from typing import Any

from ringleader import constants as c
from ringleader.cache import Cache

MANAGED = [{"manager": "kube-scheduler", "operation": "Update", "fieldsV1": {"f:spec": {}}}]


def with_managed_fields(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["managedFields"] = MANAGED
    return body


def test_jobs_children_and_written_status_are_held_without_managed_fields() -> None:
    cache = Cache()
    job = {"metadata": {"namespace": "ns", "name": "train", "uid": "j"}, "spec": {"replicas": 2}}
    key = cache.put_job(with_managed_fields(job))
    labels = {c.LABEL_JOB_NAME: "train"}
    pod = {"kind": "Pod", "metadata": {"namespace": "ns", "name": "w", "labels": labels}}
    cache.put_child(with_managed_fields(pod))
    held = cache.job(key)
    assert held is not None and held["metadata"] == {"namespace": "ns", "name": "train", "uid": "j"}
    assert held["spec"] == {"replicas": 2}
    (child,) = cache.children(key)
    assert "managedFields" not in child["metadata"] and child["metadata"]["labels"] == labels
    written = with_managed_fields({"metadata": {"namespace": "ns", "name": "train"}, "status": {}})
    cache.record_status_write(key, held, written)
    assert "managedFields" not in (cache.job(key) or {})["metadata"]
    assert "managedFields" in written["metadata"]  # the caller's body is left as it was
