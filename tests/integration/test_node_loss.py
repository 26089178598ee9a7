"""Lost nodes, evictions and preemption on a real control plane with kwok nodes.

Each test gets fake 8-GPU nodes of its own, tainted so that only its job lands there: it can
break one of them without touching the nodes the other tests use. Each worker asks for 8 GPUs,
so no two workers share a node.
"""

from __future__ import annotations

import json
from typing import Any

from tests.harness import OperatorProcess
from tests.integration.test_operator import (
    job_status,
    make_job,
    wait_for_phase,
    worker_pods,
)
from tests.kube import Kube, is_live, live_worker, wait_for_worker, wait_until
from tools.localcluster.nodes import NODE_POOL_LABEL

Obj = dict[str, Any]
NOT_READY_STAGE = "node-not-ready.stage.kwok.x-k8s.io"
# Like a kubelet stopping containers, kwok takes this long to remove a deleted pod: without it
# the pod is gone before the operator has seen why it was deleted.
DELETE_DELAY_KEY = "pod-delete.stage.ringleader.dev/delay"
DELETE_DELAY = {DELETE_DELAY_KEY: "2s"}
UNREACHABLE = "node.kubernetes.io/unreachable"


def pool_job(pool: str, **spec: Any) -> Obj:
    """Two 8-GPU workers restricted to the pool's nodes."""
    job = make_job(gpus=8, **spec)
    job["spec"]["template"]["metadata"] = {"annotations": dict(DELETE_DELAY)}
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {NODE_POOL_LABEL: pool}
    pod_spec["tolerations"] = [
        {"key": NODE_POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}
    ]
    return job


def pod(kube: Kube, namespace: str, name: str) -> Obj | None:
    found = kube.get("pods", namespace=namespace, selector="ringleader.dev/job-name=train")
    return next((p for p in found["items"] if p["metadata"]["name"] == name), None)


def node_of(kube: Kube, namespace: str, name: str) -> str:
    found = pod(kube, namespace, name)
    assert found is not None, name
    return str(found["spec"]["nodeName"])


def disruption(found: Obj | None) -> str | None:
    """The reason of the pod's DisruptionTarget condition, once it is being deleted."""
    if found is None or not found["metadata"].get("deletionTimestamp"):
        return None
    for condition in found["status"].get("conditions") or []:
        if condition["type"] == "DisruptionTarget" and condition["status"] == "True":
            return str(condition["reason"])
    return None


def events(kube: Kube, namespace: str, reason: str) -> list[Obj]:
    found: list[Obj] = kube.get("events", namespace=namespace)["items"]
    return [e for e in found if e.get("reason") == reason]


def recovered(
    kube: Kube, namespace: str, lost: Obj, timeout: float, node_lost: bool = False
) -> Obj:
    """The job's status once it runs again with two workers, the lost pod (and a lost node) not
    among them, whether the failure policy replaced that worker or restarted the gang."""
    lost_uid = lost["metadata"]["uid"]
    lost_node = lost["spec"]["nodeName"] if node_lost else None

    def back() -> Obj | None:
        pods = [p for p in worker_pods(kube, namespace) if is_live(p)]
        fresh = all(
            p["metadata"]["uid"] != lost_uid and p["spec"].get("nodeName") != lost_node
            for p in pods
        )
        status = job_status(kube, namespace)
        done = status.get("phase") == "Running" and status.get("lastFailure")
        return status if done and fresh and len(pods) == 2 else None

    return wait_until(back, timeout=timeout, what="the job Running again without the lost pod")


def start_and_pick_a_worker(kube: Kube, namespace: str, pool: str) -> Obj:
    """Start the pool's job, wait until it runs, and return the worker to lose: one whose node
    the rendezvous pod does not share, so that losing the node loses that worker alone (the
    scheduler puts the rendezvous pod on any node of the pool)."""
    kube.apply(pool_job(pool), namespace)
    wait_for_phase(kube, namespace, "Running")
    rendezvous = node_of(kube, namespace, "train-rdzv")
    workers = [live_worker(kube, namespace, "train", i) for i in (1, 0)]
    found = next(w for w in workers if w is not None and w["spec"]["nodeName"] != rendezvous)
    return found


def assert_recovered_uncounted(
    status: Obj, failure_class: str, reasons: tuple[str, ...], lost: str
) -> None:
    last = status["lastFailure"]
    assert (last["class"], last["pod"]) == (failure_class, lost)
    assert last["reason"] in reasons
    assert status["restartsByClass"] == {failure_class: 1}
    assert status.get("restarts", 0) == 0


def test_a_node_gone_not_ready_loses_its_worker_within_the_short_toleration(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    lost = start_and_pick_a_worker(kube, namespace, pool)
    name = lost["metadata"]["name"]
    kube.run("label", "node", lost["spec"]["nodeName"], f"{NOT_READY_STAGE}=true")
    # The node lifecycle controller taints the node not-ready:NoExecute within seconds; the
    # worker's toleration (30 s, not the API server's default 300 s) then runs out.
    status = recovered(kube, namespace, lost, timeout=90, node_lost=True)
    assert_recovered_uncounted(status, "NodeLost", ("DeletionByTaintManager",), name)
    (warning,) = events(kube, namespace, "WorkerFailed")
    assert warning["type"] == "Warning"
    assert f"{name} failed (NodeLost" in warning["message"]
    assert "not counted" in warning["message"]


def test_a_deleted_node_loses_its_worker_at_once_not_when_the_pod_gc_gets_to_it(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    lost = start_and_pick_a_worker(kube, namespace, pool)
    name, node = lost["metadata"]["name"], lost["spec"]["nodeName"]
    kube.run("delete", "node", node)
    # The pod garbage collector would delete the pod, still Running and Ready on the deleted
    # node, after 40 s or more, with reason DeletionByPodGC: NodeDeleted says the operator did.
    status = recovered(kube, namespace, lost, timeout=90, node_lost=True)
    assert_recovered_uncounted(status, "NodeLost", ("NodeDeleted",), name)
    assert status["lastFailure"]["message"] == f"its node {node} was deleted"
    # Announced once: the report of the force-deletion itself (the pod, deletionTimestamp set)
    # used to bring the pod back into the operator's cache, and it was force-deleted and
    # announced again (1 run in 3 to 4).
    found = events(kube, namespace, "PodForceDeleted")
    expected = f"pod {name} was on node {node}, which was deleted: force-deleted"
    assert [e["message"] for e in found] == [expected]


def stop_kubelet(kube: Kube, namespace: str, node: str) -> None:
    """Let the node die as if its kubelet had.

    Its Lease gets a holder that never renews it, so kwok stops renewing it and the node turns
    Unknown. And, as a dead kubelet never finishes deleting a pod, the node's pods get a deletion
    delay of a day: kwok still plays the pods of a node whose lease it let go when it happened
    to start its pod controller before its node controller (kwok v0.8.0 starts them in map order).
    """
    patch = {"spec": {"holderIdentity": "dead-kubelet", "leaseDurationSeconds": 3600}}
    lease = ["lease", node, "-n", "kube-node-lease"]
    kube.run("patch", *lease, "--type=merge", "-p", json.dumps(patch))
    on_node = kube.get("pods", namespace=namespace)["items"]
    for found in on_node:
        if found["spec"].get("nodeName") == node:
            name = found["metadata"]["name"]
            kube.run(
                "annotate", "pod", name, "-n", namespace, f"{DELETE_DELAY_KEY}=24h", "--overwrite"
            )


def test_a_worker_stuck_terminating_on_a_dead_node_is_force_deleted_and_replaced(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    policy = {
        "rules": [
            {"classes": ["NodeLost"], "action": "RestartWorker", "countTowardsMaxRestarts": False}
        ]
    }
    job = pool_job(pool, failurePolicy=policy)
    pod_spec = job["spec"]["template"]["spec"]
    # The user's own tolerations and grace period win; short ones keep this test short.
    pod_spec["tolerations"].append(
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
    )
    pod_spec["terminationGracePeriodSeconds"] = 2
    kube.apply(job, namespace)
    wait_for_phase(kube, namespace, "Running")
    lost = wait_for_worker(kube, namespace, "train", 1)
    kept = wait_for_worker(kube, namespace, "train", 0)["metadata"]
    name, dead = lost["metadata"]["name"], lost["spec"]["nodeName"]
    stop_kubelet(kube, namespace, dead)

    stuck = wait_until(
        lambda: disruption(pod(kube, namespace, name)),
        timeout=60,
        what=f"{name} evicted from the dead node",
    )
    assert stuck == "DeletionByTaintManager"

    def replaced() -> Obj | None:
        found = live_worker(kube, namespace, "train", 1, other_than=lost["metadata"]["uid"])
        # The job may still say Running from before the replacement was made: the replacement
        # itself must run (bound to a node) too.
        running = found is not None and found.get("status", {}).get("phase") == "Running"
        status = job_status(kube, namespace)
        return found if running and status.get("phase") == "Running" else None

    replacement = wait_until(replaced, timeout=60, what=f"{name} replaced, Running")
    assert replacement["spec"]["nodeName"] != dead
    assert replacement["metadata"]["name"] != name  # a name of its own
    survivor = pod(kube, namespace, kept["name"])
    assert survivor is not None and survivor["metadata"]["uid"] == kept["uid"]
    (forced,) = events(kube, namespace, "PodForceDeleted")
    assert forced["type"] == "Warning"
    assert forced["message"].startswith(f"pod {name} was still terminating")
    assert forced["message"].endswith(f"on lost node {dead}: force-deleted")
    status = job_status(kube, namespace)
    assert status["lastFailure"]["action"] == "RestartWorker"
    assert_recovered_uncounted(status, "NodeLost", ("DeletionByTaintManager",), name)


def evict(kube: Kube, namespace: str, name: str) -> None:
    """What `kubectl drain` does per pod: POST an Eviction to the pod's eviction subresource."""
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/eviction"
    kube.run("create", "--raw", path, "-f", "-", stdin=json.dumps(body))


def test_an_evicted_worker_is_preempted_and_recovered_without_using_up_a_restart(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    job = make_job()
    job["spec"]["template"]["metadata"] = {"annotations": dict(DELETE_DELAY)}
    kube.apply(job, namespace)
    wait_for_phase(kube, namespace, "Running")
    lost = wait_for_worker(kube, namespace, "train", 1)
    evict(kube, namespace, lost["metadata"]["name"])
    status = recovered(kube, namespace, lost, timeout=30)
    assert_recovered_uncounted(
        status, "Preempted", ("EvictionByEvictionAPI",), lost["metadata"]["name"]
    )


def test_a_worker_preempted_by_a_higher_priority_pod_is_recovered_without_using_up_a_restart(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    lost = start_and_pick_a_worker(kube, namespace, pool)
    name, node = lost["metadata"]["name"], lost["spec"]["nodeName"]
    urgent_class = f"{namespace}-urgent"
    priority = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": urgent_class},
        "value": 1000000,
    }
    # It needs all the GPUs of the node that worker runs on.
    urgent = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "urgent"},
        "spec": {
            "priorityClassName": urgent_class,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": pool_job(pool)["spec"]["template"]["spec"]["tolerations"],
            "containers": [
                {"name": "c", "image": "urgent", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
            ],
        },
    }
    try:
        kube.apply([priority, urgent], namespace)
        status = recovered(kube, namespace, lost, timeout=30)
    finally:
        kube.run("delete", "priorityclass", urgent_class, "--wait=false", check=False)
    preempted_by = ("PreemptionByScheduler", "PreemptionByKubeScheduler")
    assert_recovered_uncounted(status, "Preempted", preempted_by, name)

    def urgent_placed() -> bool:
        placed: Obj = kube.get("pod", "urgent", namespace=namespace)
        return bool(placed["spec"].get("nodeName") == node)

    wait_until(urgent_placed, what="the urgent pod placed where worker 1 was")
