"""Kueue's Workload for a queued job, and reading what Kueue wrote back (prototype, pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ringleader import kueueworkload as kw
from tests.unit.operator.jobs import make_job, parse

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
TOLERATION = {"key": "pool", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}


def job(**spec: Any) -> Any:
    body = make_job(spec)
    body["metadata"]["uid"] = "uid-1"
    return parse(body)


def workload_with(*conditions: tuple[str, str, str], admission: Any = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": kind, "status": value, "reason": kind, "message": f"{kind} says"}
            for kind, value, _ in conditions
        ]
    }
    if admission is not None:
        status["admission"] = admission
    return {"apiVersion": kw.API_VERSION, "kind": "Workload", "status": status}


def test_a_fixed_size_job_asks_for_all_its_workers_under_its_owner_and_queue() -> None:
    workload = kw.build_workload(job(), "team", priority=None)
    assert workload["metadata"]["name"] == "dtj-digits"
    assert workload["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = workload["spec"]
    assert spec["queueName"] == "team" and "priorityClassRef" not in spec
    [workers] = spec["podSets"]
    assert (workers["name"], workers["count"], "minCount" in workers) == ("workers", 2, False)
    # What Kueue counts and places: resources, restrictions; not the worker's env or volumes.
    [container] = workers["template"]["spec"]["containers"]
    assert set(container) <= {"name", "image", "resources"}
    assert "volumes" not in workers["template"]["spec"]


def test_an_elastic_job_may_be_admitted_at_any_count_from_its_minimum() -> None:
    elastic = job(replicas=4, elastic={"minReplicas": 2, "maxReplicas": 6})
    [workers] = kw.build_workload(elastic, "team", None)["spec"]["podSets"]
    assert (workers["count"], workers["minCount"]) == (4, 2)


def test_the_priority_class_reaches_the_workload_with_its_value() -> None:
    urgent = job(scheduling={"priorityClassName": "urgent"})
    spec = kw.build_workload(urgent, "team", priority=1000)["spec"]
    assert spec["priorityClassRef"] == {
        "group": "scheduling.k8s.io",
        "kind": "PriorityClass",
        "name": "urgent",
    }
    assert spec["priority"] == 1000
    [workers] = spec["podSets"]
    assert workers["template"]["spec"]["priorityClassName"] == "urgent"


def test_the_status_reads_as_queued_admitted_evicted_or_finished() -> None:
    assert kw.read_admission(workload_with()) == kw.Admission(
        "Queued", "waiting for Kueue to reserve quota"
    )
    pending = workload_with(("QuotaReserved", "False", ""))
    assert kw.read_admission(pending) == kw.Admission("Queued", "QuotaReserved says")
    flavors = {"nvidia.com/gpu": "a100", "cpu": "a100"}
    assignment = {"name": "workers", "count": 2, "flavors": flavors}
    admitted = workload_with(
        ("QuotaReserved", "True", ""),
        ("Admitted", "True", ""),
        admission={"clusterQueue": "cq", "podSetAssignments": [assignment]},
    )
    assert kw.read_admission(admitted) == kw.Admission(
        "Admitted", "Admitted says", count=2, flavors=("a100",), cluster_queue="cq"
    )
    evicted = workload_with(("QuotaReserved", "True", ""), ("Evicted", "True", ""))
    assert kw.read_admission(evicted).state == "Evicted"
    requeued = workload_with(("QuotaReserved", "False", ""), ("Evicted", "True", ""))
    assert kw.read_admission(requeued) == kw.Admission("Queued", "QuotaReserved says")
    finished = workload_with(("Evicted", "True", ""), ("Finished", "True", ""))
    assert kw.read_admission(finished).state == "Finished"


def test_flavors_add_their_node_labels_and_tolerations_to_the_workers() -> None:
    flavors: list[dict[str, Any]] = [
        {"spec": {"nodeLabels": {"pool": "a100"}, "tolerations": [TOLERATION]}},
        {"spec": {"nodeLabels": {"zone": "b"}}},
    ]
    placement = kw.build_placement(flavors)
    assert placement.node_selector == {"pool": "a100", "zone": "b"}
    assert placement.tolerations == [TOLERATION]


def test_an_evicted_workload_gives_its_quota_back_as_requeued() -> None:
    evicted = workload_with(("QuotaReserved", "True", ""), ("Evicted", "True", ""))
    patch = kw.build_requeue_patch(evicted, NOW)["status"]
    assert patch["admission"] is None
    by_type = {c["type"]: c for c in patch["conditions"]}
    assert by_type["QuotaReserved"]["status"] == "False"
    assert by_type["Admitted"]["status"] == "False"
    assert (by_type["Requeued"]["status"], by_type["Requeued"]["reason"]) == ("True", "Evicted")
    assert by_type["Evicted"]["status"] == "True"  # Kueue's record of why stays
    assert by_type["Requeued"]["lastTransitionTime"] == "2026-11-29T12:00:00Z"


def test_a_finished_job_marks_its_workload_finished() -> None:
    patch = kw.build_finished_patch(workload_with(("Admitted", "True", "")), True, "done", NOW)
    by_type = {c["type"]: c for c in patch["status"]["conditions"]}
    assert (by_type["Finished"]["status"], by_type["Finished"]["reason"]) == ("True", "Succeeded")
    assert by_type["Admitted"]["status"] == "True"
