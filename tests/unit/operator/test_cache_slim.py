"""The cache keeps what decisions read: not who last wrote each field, nor the parts of a pod's
spec that no decision reads."""

from __future__ import annotations

import copy
import json
from typing import Any

from ringleader import builders, lifecycle, pods
from ringleader import constants as c
from ringleader.cache import Cache
from tests.unit.operator.jobs import make_job, parse

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


def running_worker(job: dict[str, Any]) -> dict[str, Any]:
    """A worker pod as the watch reports it once it has run and exited: built, bound, statused."""
    pod = builders.build_worker_pod(parse(job), 0, 0)
    pod["metadata"]["uid"] = "p"
    pod["spec"]["nodeName"] = "node-a"
    terminated = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    statuses = [{"name": x["name"], "state": terminated} for x in pod["spec"]["containers"]]
    pod["status"] = {"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": statuses}
    return pod


def test_a_pod_is_held_with_only_the_spec_its_decisions_read() -> None:
    job = make_job({"replicas": 3, "elastic": {"minReplicas": 2, "maxReplicas": 4}})
    pod = running_worker(job)
    cache = Cache()
    key = cache.put_child(copy.deepcopy(pod))
    assert key is not None
    (held,) = cache.children(key)
    assert held["metadata"] == pod["metadata"] and held["status"] == pod["status"]
    assert len(json.dumps(held["spec"])) < len(json.dumps(pod["spec"])) / 4
    for read in (pods.node_of, pods.exited_cleanly, pods.is_ready, lifecycle._nnodes_of):
        assert read(held) == read(pod), read.__name__
    assert lifecycle._nnodes_of(held) == "2:4"


def test_children_that_are_not_pods_keep_their_spec() -> None:
    service = {
        "kind": "Service",
        "metadata": {"namespace": "ns", "name": "train", "labels": {c.LABEL_JOB_NAME: "train"}},
        "spec": {"clusterIP": "None", "ports": [{"port": 29400}]},
    }
    cache = Cache()
    key = cache.put_child(copy.deepcopy(service))
    assert key is not None and cache.children(key) == [service]


def test_held_bodies_share_their_short_strings_and_equal_what_was_reported() -> None:
    job = make_job({"replicas": 2})
    text = json.dumps(running_worker(job))
    cache = Cache()
    # Two reports parsed apart, as kopf hands them over: equal strings, distinct objects.
    first, second = json.loads(text), json.loads(text)
    second["metadata"]["name"] = "another"
    key = cache.put_child(first)
    cache.put_child(second)
    assert key is not None
    held = {pod["metadata"]["name"]: pod for pod in cache.children(key)}
    a, b = held[first["metadata"]["name"]], held["another"]
    assert a["metadata"] == first["metadata"] and a["status"] == first["status"]
    assert a["metadata"]["labels"][c.LABEL_JOB_NAME] is b["metadata"]["labels"][c.LABEL_JOB_NAME]
    assert next(iter(a["status"])) is next(iter(b["status"]))  # keys too
