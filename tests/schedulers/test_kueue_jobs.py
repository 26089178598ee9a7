"""DistributedTrainingJobs under the real Kueue, driven by the operator (queueing.py): a job
labelled kueue.x-k8s.io/queue-name makes no pod until admitted and says so (phase Queued); it
runs where its flavor says; preempted by a higher priority it stops, goes back to Queued without
a counted restart, and runs again once the quota is back."""

from __future__ import annotations

from typing import Any

import pytest

from ringleader import kueueworkload as kw
from tests.harness import OperatorProcess
from tests.integration.test_operator import make_job, wait_for_phase
from tests.kube import Kube, wait_until
from tests.schedulers.test_kueue_workload import PRIORITIES, preempting_queue, priority_classes
from tools.localcluster.nodes import NODE_POOL_LABEL

# Fixtures of the Workload protocol's test, used here too: 16 GPUs of quota (one job of two
# 8-GPU workers), a higher priority preempting a lower one.
__all__ = ["preempting_queue", "priority_classes"]

Obj = dict[str, Any]


def queued_job(name: str, queue: str, priority_class: str | None = None) -> Obj:
    """Two 8-GPU workers that nothing places on the pool but the flavor Kueue admits them to."""
    job = make_job(name=name, gpus=8)
    job["metadata"]["labels"] = {kw.QUEUE_LABEL: queue}
    if priority_class:
        job["spec"]["scheduling"] = {"priorityClassName": priority_class}
    return job


def workers(kube: Kube, namespace: str, job: str) -> list[Obj]:
    selector = f"ringleader.dev/job-name={job},ringleader.dev/role=worker"
    found: list[Obj] = kube.get("pods", namespace=namespace, selector=selector)["items"]
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def own_condition(status: Obj) -> Obj:
    return next(c for c in status["conditions"] if c["status"] == "True")


@pytest.mark.usefixtures("crd")
def test_a_job_waits_queued_until_kueue_admits_it_and_runs_on_its_flavor(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str, preempting_queue: str
) -> None:
    kube.apply(queued_job("first", preempting_queue), namespace)
    wait_for_phase(kube, namespace, "Running", name="first", timeout=90)
    for pod in workers(kube, namespace, "first"):
        assert pod["spec"]["nodeSelector"][NODE_POOL_LABEL] == pool  # the flavor's node labels
        assert pod["spec"]["nodeName"].startswith(pool)
    kube.apply(queued_job("second", preempting_queue), namespace)
    queued = wait_for_phase(kube, namespace, "Queued", name="second")
    condition = own_condition(queued)
    assert condition["reason"] == "WaitingForAdmission"
    assert f"in queue {preempting_queue}" in condition["message"]
    assert workers(kube, namespace, "second") == []
    # A job deleted while queued leaves nothing: its Workload goes with it.
    kube.apply(queued_job("third", preempting_queue), namespace)
    wait_for_phase(kube, namespace, "Queued", name="third")
    kube.run("get", "workload", kw.workload_name("third"), "-n", namespace)
    kube.run("delete", "dtj", "third", "-n", namespace)
    wait_until(
        lambda: not kube.run("get", "workloads", "-n", namespace, "-o", "name").count("third"),
        what="the deleted job's Workload gone",
    )
    assert workers(kube, namespace, "third") == []
    assert kube.run("get", "pods,services", "-n", namespace, "-l",
                    "ringleader.dev/job-name=third", "-o", "name") == ""  # fmt: skip
    kube.run("delete", "dtj", "first", "-n", namespace)  # its Workload goes with it
    wait_for_phase(kube, namespace, "Running", name="second", timeout=90)


@pytest.mark.usefixtures("crd")
def test_a_preempted_job_stops_queues_again_uncounted_and_runs_once_the_quota_is_back(
    kube: Kube,
    operator: OperatorProcess,
    namespace: str,
    preempting_queue: str,
    priority_classes: dict[str, str],
) -> None:
    low = queued_job("low", preempting_queue, priority_classes["low"])
    kube.apply(low, namespace)
    wait_for_phase(kube, namespace, "Running", name="low", timeout=90)
    workload = kube.get("workload", kw.workload_name("low"), namespace=namespace)
    assert workload["spec"]["priority"] == PRIORITIES["low"]

    kube.apply(queued_job("urgent", preempting_queue, priority_classes["high"]), namespace)
    wait_for_phase(kube, namespace, "Running", name="urgent", timeout=120)
    status = wait_for_phase(kube, namespace, "Queued", name="low")
    assert status.get("restarts", 0) == 0 and "lastFailure" not in status
    assert workers(kube, namespace, "low") == []
    requeued = kube.get("workload", kw.workload_name("low"), namespace=namespace)
    conditions = {c["type"]: c for c in requeued["status"]["conditions"]}
    assert conditions["Requeued"]["status"] == "True"

    kube.run("delete", "dtj", "urgent", "-n", namespace)
    wait_for_phase(kube, namespace, "Running", name="low", timeout=120)
    wait_until(lambda: len(workers(kube, namespace, "low")) == 2, what="low's two workers again")


@pytest.mark.usefixtures("crd", "operator")
def test_an_elastic_job_is_admitted_at_what_the_quota_holds_between_its_bounds(
    kube: Kube, namespace: str, preempting_queue: str
) -> None:
    job = queued_job("elastic", preempting_queue)
    job["spec"]["replicas"] = 3  # 24 GPUs asked, 16 in the quota: partial admission
    job["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 3}
    kube.apply(job, namespace)
    running = wait_for_phase(kube, namespace, "Running", name="elastic", timeout=90)
    assert len(workers(kube, namespace, "elastic")) == 2, running
    workload = kube.get("workload", kw.workload_name("elastic"), namespace=namespace)
    (assignment,) = workload["status"]["admission"]["podSetAssignments"]
    assert assignment["count"] == 2
