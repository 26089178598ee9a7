"""The Kueue proposal's Workload protocol (ringleader.kueueworkload) against the real Kueue.

The operator does not drive it yet: the test plays the operator's part with kubectl, using the
same pure functions the operator would, so what Kueue does with them is checked: partial
admission of an elastic job, preemption by priority, the quota given back after an eviction,
and a finished Workload releasing its quota.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ringleader import kueueworkload as kw
from ringleader.models import parse_job
from tests.integration.test_node_loss import pool_job
from tests.kube import Kube, wait_until
from tests.schedulers.test_kueue import build_queues
from tools.localcluster.nodes import NODE_POOL_LABEL

PRIORITIES = {"low": 100, "high": 1000}


@pytest.fixture
def priority_classes(kube: Kube, namespace: str) -> Iterator[dict[str, str]]:
    """Two PriorityClasses of this test's own ({'low': name, 'high': name})."""
    names = {level: f"{namespace}-{level}" for level in PRIORITIES}
    classes = [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": names[level]},
            "value": value,
        }
        for level, value in PRIORITIES.items()
    ]
    kube.apply(classes, namespace)
    try:
        yield names
    finally:
        kube.run("delete", "priorityclass", *names.values(), "--wait=false", check=False)


@pytest.fixture
def preempting_queue(kube: Kube, kueue: str, pool: str, namespace: str) -> Iterator[str]:
    """16 GPUs of quota on the pool's flavor; a higher priority preempts a lower one."""
    flavor, cluster_queue, local_queue = build_queues(pool, gpus=16)
    cluster_queue["spec"]["preemption"] = {"withinClusterQueue": "LowerPriority"}
    kube.apply([flavor, cluster_queue, local_queue], namespace)
    try:
        yield local_queue["metadata"]["name"]
    finally:
        kube.run("delete", "clusterqueue,resourceflavor", pool, "--wait=false", check=False)


def submit(kube: Kube, namespace: str, job: dict[str, Any], queue: str, priority: int) -> None:
    """Create the job (suspended: nothing but the Workload matters here) and its Workload."""
    job["spec"]["runPolicy"] = {"suspend": True}
    kube.apply(job, namespace)
    body = kube.get("dtj", job["metadata"]["name"], namespace=namespace)
    kube.apply(kw.build_workload(parse_job(body), queue, priority), namespace)


def workload(kube: Kube, namespace: str, job: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get("workload", kw.workload_name(job), namespace=namespace)
    return found


def admission_in(kube: Kube, namespace: str, job: str, state: str) -> kw.Admission | None:
    admission = kw.read_admission(workload(kube, namespace, job))
    return admission if admission.state == state else None


def patch_status(kube: Kube, namespace: str, job: str, patch: dict[str, Any]) -> None:
    kube.run(
        "patch", "workload", kw.workload_name(job), "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(patch),
    )  # fmt: skip


@pytest.mark.usefixtures("crd")
def test_kueue_admits_preempts_requeues_and_releases_workloads_the_operator_would_write(
    kube: Kube,
    namespace: str,
    pool: str,
    preempting_queue: str,
    priority_classes: dict[str, str],
) -> None:
    bounds = {"minReplicas": 1, "maxReplicas": 3}
    elastic = pool_job(pool, name="elastic", replicas=3, elastic=bounds)
    elastic["spec"]["scheduling"] = {"priorityClassName": priority_classes["low"]}
    submit(kube, namespace, elastic, preempting_queue, PRIORITIES["low"])
    admitted = wait_until(
        lambda: admission_in(kube, namespace, "elastic", "Admitted"), what="elastic admitted"
    )
    assert admitted.count == 2  # 3 asked, 16 GPUs of quota: partial admission between 1 and 3
    flavors = [kube.get("resourceflavor", name) for name in admitted.flavors]
    placement = kw.build_placement(flavors)
    assert placement.node_selector == {NODE_POOL_LABEL: pool}
    assert placement.tolerations[0]["value"] == pool

    urgent = pool_job(pool, name="urgent", replicas=2)
    urgent["spec"]["scheduling"] = {"priorityClassName": priority_classes["high"]}
    submit(kube, namespace, urgent, preempting_queue, PRIORITIES["high"])
    evicted = wait_until(
        lambda: admission_in(kube, namespace, "elastic", "Evicted"), what="elastic preempted"
    )
    assert "Preempted" in evicted.message
    assert admission_in(kube, namespace, "urgent", "Queued")  # until the quota is given back

    # The operator's part once the preempted job's pods are gone (checkpointed and stopped).
    now = datetime.now(UTC)
    requeue = kw.build_requeue_patch(workload(kube, namespace, "elastic"), now)
    patch_status(kube, namespace, "elastic", requeue)
    wait_until(lambda: admission_in(kube, namespace, "urgent", "Admitted"), what="urgent admitted")
    assert admission_in(kube, namespace, "elastic", "Queued")

    finished = kw.build_finished_patch(workload(kube, namespace, "urgent"), True, "done", now)
    patch_status(kube, namespace, "urgent", finished)
    readmitted = wait_until(
        lambda: admission_in(kube, namespace, "elastic", "Admitted"),
        what="the preempted job admitted again once the quota was released",
    )
    assert readmitted.count == 2
