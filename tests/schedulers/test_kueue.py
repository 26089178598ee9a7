"""Kueue in the local cluster, smoke-tested with the kind it manages out of the box: batch/v1 Job.

A ClusterQueue with quota for one 8-GPU job, a ResourceFlavor that sends admitted pods to the
test's own pool (its node label and taint), a LocalQueue. Kueue's webhook suspends a labelled
Job at creation; the first is admitted and runs on the pool, the second waits suspended with no
pod until the first finishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_operator import COMPLETE
from tests.kube import Kube, wait_until
from tools.localcluster.nodes import NODE_POOL_LABEL

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
GPUS = "nvidia.com/gpu"


def build_queues(pool: str, gpus: int) -> list[dict[str, Any]]:
    """A ResourceFlavor for the pool, a ClusterQueue with `gpus` of quota, a LocalQueue."""
    taint = {"key": NODE_POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}
    flavor = {
        "apiVersion": KUEUE_API,
        "kind": "ResourceFlavor",
        "metadata": {"name": pool},
        "spec": {"nodeLabels": {NODE_POOL_LABEL: pool}, "tolerations": [taint]},
    }
    quotas = [
        {"name": "cpu", "nominalQuota": "100"},
        {"name": "memory", "nominalQuota": "100Gi"},
        {"name": GPUS, "nominalQuota": str(gpus)},
    ]
    cluster_queue = {
        "apiVersion": KUEUE_API,
        "kind": "ClusterQueue",
        "metadata": {"name": pool},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": pool}},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", GPUS],
                    "flavors": [{"name": pool, "resources": quotas}],
                }
            ],
        },
    }
    local_queue = {
        "apiVersion": KUEUE_API,
        "kind": "LocalQueue",
        "metadata": {"name": "team"},
        "spec": {"clusterQueue": pool},
    }
    return [flavor, cluster_queue, local_queue]


@pytest.fixture
def queues(kube: Kube, kueue: str, pool: str, namespace: str) -> Iterator[str]:
    """Kueue queues for the pool's 8 GPUs of quota; yields the LocalQueue's name."""
    kube.apply(build_queues(pool, gpus=8), namespace)
    try:
        yield "team"
    finally:
        kube.run("delete", "clusterqueue,resourceflavor", pool, "--wait=false", check=False)


def build_job(name: str, queue: str) -> dict[str, Any]:
    """A plain Job of one 8-GPU pod, labelled for Kueue, that nothing restricts to the pool."""
    container = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": "1", GPUS: "8"}, "limits": {GPUS: "8"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {
            "template": {"spec": {"containers": [container], "restartPolicy": "Never"}},
            "backoffLimit": 0,
        },
    }


def job_pods(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kube.get(
        "pods", namespace=namespace, selector=f"batch.kubernetes.io/job-name={name}"
    )["items"]
    return found


def workload_conditions(kube: Kube, namespace: str, job: str) -> dict[str, str]:
    """The status of each condition of the job's Workload ({} until Kueue made one)."""
    for workload in kube.get("workloads.kueue.x-k8s.io", namespace=namespace)["items"]:
        owners = workload["metadata"].get("ownerReferences") or []
        if any(o["kind"] == "Job" and o["name"] == job for o in owners):
            conditions = workload.get("status", {}).get("conditions") or []
            return {c["type"]: c["status"] for c in conditions}
    return {}


def running_on_pool(kube: Kube, namespace: str, name: str, pool: str) -> bool:
    pods = job_pods(kube, namespace, name)
    return any(
        p["status"].get("phase") == "Running"
        and p["spec"].get("nodeSelector", {}).get(NODE_POOL_LABEL) == pool
        and p["spec"].get("nodeName", "").startswith(pool)
        for p in pods
    )


def test_kueue_admits_one_job_within_quota_and_keeps_the_next_suspended_until_it_finishes(
    kube: Kube, namespace: str, pool: str, queues: str
) -> None:
    kube.apply(build_job("first", queues), namespace)
    # The webhook suspended it at creation: no pod could start before Kueue's decision.
    assert kube.get("job", "first", namespace=namespace)["spec"]["suspend"] is True
    wait_until(
        lambda: running_on_pool(kube, namespace, "first", pool),
        what="the first job admitted, its pod sent to the flavor's nodes and running",
    )
    kube.apply(build_job("second", queues), namespace)
    wait_until(
        lambda: workload_conditions(kube, namespace, "second").get("QuotaReserved") == "False",
        what="the second job's Workload pending for quota",
    )
    assert kube.get("job", "second", namespace=namespace)["spec"]["suspend"] is True
    assert job_pods(kube, namespace, "second") == []
    for pod in job_pods(kube, namespace, "first"):
        kube.run("label", "pod", pod["metadata"]["name"], "-n", namespace, f"{COMPLETE}=true")
    wait_until(
        lambda: workload_conditions(kube, namespace, "first").get("Finished") == "True",
        what="the first job's Workload finished",
    )
    wait_until(
        lambda: running_on_pool(kube, namespace, "second", pool),
        what="the second job admitted once the quota was free, and running",
    )
