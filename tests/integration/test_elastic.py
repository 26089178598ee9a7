"""Elastic jobs on kwok nodes: capacity decides the size, between minReplicas and maxReplicas."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import OperatorProcess
from tests.integration.test_node_loss import NOT_READY_STAGE, pool_job
from tests.integration.test_operator import job_status, worker_pods
from tests.kube import Kube, KubectlError, wait_until

ELASTIC = {"minReplicas": 2, "maxReplicas": 4}


def running_workers(kube: Kube, namespace: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in worker_pods(kube, namespace)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    )


def pool_nodes(kube: Kube, pool: str) -> list[str]:
    found = kube.get("nodes", selector=f"ringleader.dev/node-pool={pool}")["items"]
    return sorted(n["metadata"]["name"] for n in found)


def status_where(kube: Kube, namespace: str, workers: str) -> dict[str, Any]:
    """The job's status once its WORKERS column reads `workers` and it is Running."""

    def probe() -> dict[str, Any] | None:
        status = job_status(kube, namespace)
        ok = status.get("phase") == "Running" and status.get("workers") == workers
        return status if ok else None

    return wait_until(probe, timeout=90, what=f"Running with {workers} workers")


def test_capacity_decides_the_size_of_an_elastic_job_between_its_bounds(
    kube: Kube, operator: OperatorProcess, pool: str, namespace: str
) -> None:
    nodes = pool_nodes(kube, pool)
    for node in nodes[2:]:  # room for two 8-GPU workers only
        kube.run("cordon", node)
    kube.apply(pool_job(pool, replicas=4, elastic=ELASTIC), namespace)
    # Workers beyond the minimum wait for capacity without holding the job back.
    status = status_where(kube, namespace, "2/4")
    running = {c["type"]: c for c in status["conditions"]}["Running"]
    assert running["reason"] == "RunningBelowDesiredReplicas"
    pending = [p for p in worker_pods(kube, namespace) if p["status"].get("phase") == "Pending"]
    assert len(pending) == 2

    kube.run("uncordon", nodes[2])  # capacity appears: the job grows
    status_where(kube, namespace, "3/4")

    # A node lost: its worker goes, the job shrinks and keeps running above its minimum.
    lost = next(p for p in worker_pods(kube, namespace) if p["spec"].get("nodeName") == nodes[0])
    kube.run("label", "node", nodes[0], f"{NOT_READY_STAGE}=true")
    wait_until(
        lambda: (
            lost["metadata"]["uid"]
            not in {p["metadata"]["uid"] for p in worker_pods(kube, namespace)}
        ),
        timeout=120,
        what="the lost worker evicted after its toleration",
    )
    status = status_where(kube, namespace, "2/4")
    assert lost["metadata"]["uid"] not in {
        p["metadata"]["uid"] for p in worker_pods(kube, namespace)
    }
    assert status.get("restarts", 0) == 0
    assert status["restartAttempt"] == 0  # the survivors were not restarted

    kube.run("uncordon", nodes[3])  # more capacity: back to three
    status_where(kube, namespace, "3/4")


def test_scaling_an_elastic_job_beyond_its_bounds_is_refused_at_apply_time(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    kube.apply(pool_job(pool, replicas=2, elastic=ELASTIC), namespace)
    for replicas in ("1", "5"):
        with pytest.raises(KubectlError, match=r"spec\.replicas must be between"):
            kube.run("scale", "dtj/train", "-n", namespace, f"--replicas={replicas}")
    assert job_status(kube, namespace).get("restartAttempt", 0) == 0


def hpa(min_replicas: int, max_replicas: int) -> dict[str, Any]:
    """A HorizontalPodAutoscaler on the job's scale subresource (no metrics: the bounds act)."""
    target = {"apiVersion": "ringleader.dev/v1alpha1", "kind": "DistributedTrainingJob"}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "train"},
        "spec": {
            "scaleTargetRef": {**target, "name": "train"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
        },
    }


def unable_to_scale(kube: Kube, namespace: str) -> dict[str, Any] | None:
    """The HPA's AbleToScale condition once it is False."""
    found = kube.get("hpa", "train", namespace=namespace)
    conditions = (found.get("status") or {}).get("conditions") or []
    able = next((c for c in conditions if c["type"] == "AbleToScale"), None)
    return able if able and able["status"] == "False" else None


def test_an_hpa_resizes_an_elastic_job_within_its_bounds_and_is_refused_beyond_them(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    kube.apply(pool_job(pool, replicas=2, elastic=ELASTIC), namespace)
    status_where(kube, namespace, "2/2")
    # Below its minimum, the HPA controller raises the job to it through /scale.
    kube.apply(hpa(3, 4), namespace)
    status_where(kube, namespace, "3/3")
    assert job_status(kube, namespace)["restartAttempt"] == 0  # grown in place

    # Beyond the job's maxReplicas (4): the API server refuses the HPA's update.
    kube.apply(hpa(5, 6), namespace)
    refused = wait_until(
        lambda: unable_to_scale(kube, namespace), timeout=90, what="the HPA's update refused"
    )
    assert "spec.replicas must be between" in refused["message"], refused
    assert kube.get("dtj", "train", namespace=namespace)["spec"]["replicas"] == 3
