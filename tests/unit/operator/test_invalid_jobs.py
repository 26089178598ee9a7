"""Bad input that got past the API server ends in Failed with the field named, once: no loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ringleader import validation
from ringleader.reconcile import plan_reconcile
from tests.unit.operator.jobs import make_job, parse, with_container

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
Obj = dict[str, Any]


def reconciled_twice(job: Obj) -> tuple[Obj, Any]:
    """The first plan's status applied, and the plan of the pass after it."""
    first = plan_reconcile(job, [], NOW)
    assert first.status_patch is not None
    after = {**job, "status": {**(job.get("status") or {}), **first.status_patch}}
    return first.status_patch, plan_reconcile(after, [], NOW)


def no_image() -> Obj:
    job = make_job()
    del job["spec"]["template"]["spec"]["containers"][0]["image"]
    return job


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (no_image(), "spec.template.spec.containers[0].image"),
        (
            with_container(make_job(), resources={"limits": {"nvidia.com/gpu": "lots"}}),
            "spec.template.spec.containers[0].resources.limits.nvidia.com/gpu",
        ),
        (
            with_container(make_job(), resources={"requests": {"memory": "a lot"}}),
            "spec.template.spec.containers[0].resources.requests.memory",
        ),
        (make_job({"replicas": 0}), "spec.replicas"),
        (
            make_job({"elastic": {"minReplicas": "two", "maxReplicas": 4}}),
            "spec.elastic.minReplicas",
        ),
    ],
    ids=["no-image", "gpus-not-a-quantity", "memory-not-a-quantity", "zero-replicas", "bad-type"],
)
def test_a_job_that_cannot_make_valid_pods_fails_once_naming_the_field(
    job: Obj, field: str
) -> None:
    patch, again = reconciled_twice(job)
    assert patch["phase"] == "Failed"
    failed = {c["type"]: c for c in patch["conditions"]}["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "InvalidJob")
    assert field in failed["message"]
    assert patch["completionTime"] is not None
    # Nothing else happens, now or on the next pass: no pod, no retry, no second write.
    assert again.status_patch is None and again.create == [] and again.events == []
    assert again.requeue_after is None


def test_the_failure_is_announced_with_an_event() -> None:
    plan = plan_reconcile(no_image(), [], NOW)
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidJob")]
    assert plan.create == []


def test_a_whole_number_of_gpus_written_as_a_string_is_fine() -> None:
    job = with_container(make_job(), resources={"limits": {"nvidia.com/gpu": "2", "cpu": "500m"}})
    assert validation.validate_job(parse(job)) == []


def test_a_fraction_of_a_gpu_is_refused() -> None:
    job = with_container(make_job(), resources={"limits": {"nvidia.com/gpu": "500m"}})
    (problem,) = validation.validate_job(parse(job))
    assert "whole number of GPUs" in problem
