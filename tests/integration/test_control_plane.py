"""The local cluster is a real control plane: controllers, scheduler, GC and kwok all act."""

from __future__ import annotations

import json
from typing import Any

from tests.kube import Kube, wait_until

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def _pod(name: str, **extra_metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **extra_metadata},
        "spec": {"containers": [{"name": "main", "image": PAUSE_IMAGE}]},
    }


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": PAUSE_IMAGE}]},
            },
        },
    }


def _running_pods(
    kube: Kube, namespace: str, selector: str, count: int | None = None
) -> list[dict[str, Any]]:
    """Running pods matching selector; with count, [] unless exactly that many run."""
    pods = kube.get("pods", namespace=namespace, selector=selector)["items"]
    running = [pod for pod in pods if pod["status"].get("phase") == "Running"]
    return running if count is None or len(running) == count else []


def test_the_server_reports_the_pinned_kubernetes_version(kube: Kube) -> None:
    version = json.loads(kube.run("get", "--raw", "/version"))
    assert version["gitVersion"] == "v1.36.3"


def test_fake_nodes_offer_eight_gpus_each_and_are_ready(kube: Kube) -> None:
    nodes = kube.get("nodes", selector="ringleader.dev/node-pool=kwok")["items"]
    assert len(nodes) >= 4
    for node in nodes:
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"


def test_a_deployment_gets_a_replicaset_and_running_pods_bound_to_fake_nodes(
    kube: Kube, namespace: str
) -> None:
    kube.apply(_deployment("web", replicas=3), namespace)
    pods = wait_until(lambda: _running_pods(kube, namespace, "app=web", count=3), what="3 pods")
    replicasets = kube.get("replicasets", namespace=namespace, selector="app=web")["items"]
    assert len(replicasets) == 1
    owner = replicasets[0]["metadata"]["name"]
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["name"] == owner
        assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
        assert pod["status"]["podIP"]


def test_a_pod_asking_for_more_gpus_than_any_node_has_stays_unschedulable(
    kube: Kube, namespace: str
) -> None:
    pod = _pod("greedy")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "9"}}
    kube.apply(pod, namespace)

    def unschedulable() -> dict[str, Any] | None:
        status = kube.get("pod", "greedy", namespace=namespace)["status"]
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        scheduled = conditions.get("PodScheduled", {})
        return scheduled if scheduled.get("reason") == "Unschedulable" else None

    condition = wait_until(unschedulable, what="PodScheduled=False/Unschedulable")
    assert condition["status"] == "False"
    assert "nvidia.com/gpu" in condition["message"]
    assert kube.get("pod", "greedy", namespace=namespace)["status"]["phase"] == "Pending"


def test_deleting_a_deployment_garbage_collects_its_replicaset_and_pods(
    kube: Kube, namespace: str
) -> None:
    kube.apply(_deployment("gc", replicas=2), namespace)
    wait_until(lambda: len(_running_pods(kube, namespace, "app=gc")) == 2, what="2 running pods")
    kube.run("delete", "deployment", "gc", "-n", namespace, "--cascade=background")
    wait_until(
        lambda: not kube.get("replicasets,pods", namespace=namespace, selector="app=gc")["items"],
        what="ReplicaSet and pods collected",
    )


def test_deleting_a_namespace_removes_everything_in_it(kube: Kube) -> None:
    kube.run("create", "namespace", "doomed")
    kube.apply(_deployment("web", replicas=2), "doomed")
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "doomed")
    wait_until(lambda: len(_running_pods(kube, "doomed", "app=web")) == 2, what="pods running")
    kube.run("delete", "namespace", "doomed", "--wait=false")
    wait_until(
        lambda: "doomed" not in kube.run("get", "namespaces", "-o", "name"),
        timeout=90,
        what="namespace doomed gone",
    )
    assert kube.run("get", "pods,configmaps", "-n", "doomed", "-o", "name").strip() == ""


def _terminated_state(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = kube.get("pod", name, namespace=namespace)["status"]
    if status.get("phase") not in ("Failed", "Succeeded"):
        return None
    state: dict[str, Any] = status["containerStatuses"][0]["state"]["terminated"]
    return {"phase": status["phase"], **state}


def test_a_kwok_chaos_stage_fails_a_container_with_the_chosen_exit_code(
    kube: Kube, namespace: str
) -> None:
    prefix = "pod-container-running-failed.stage.kwok.x-k8s.io"
    pod = _pod(
        "doomed",
        labels={prefix: "true"},
        annotations={f"{prefix}/exit-code": "137", f"{prefix}/reason": "OOMKilled"},
    )
    kube.apply(pod, namespace)
    state = wait_until(lambda: _terminated_state(kube, namespace, "doomed"), what="pod Failed")
    assert (state["phase"], state["exitCode"], state["reason"]) == ("Failed", 137, "OOMKilled")


def test_a_pod_labelled_to_complete_succeeds_with_exit_code_zero(
    kube: Kube, namespace: str
) -> None:
    kube.apply(_pod("done", labels={"pod-complete.stage.ringleader.dev": "true"}), namespace)
    state = wait_until(lambda: _terminated_state(kube, namespace, "done"), what="pod Succeeded")
    assert (state["phase"], state["exitCode"]) == ("Succeeded", 0)


def test_a_node_labelled_not_ready_turns_not_ready_and_recovers_when_unlabelled(
    kube: Kube,
) -> None:
    label = "node-not-ready.stage.kwok.x-k8s.io"

    def ready_status() -> str:
        conditions = kube.get("node", "kwok-gpu-3")["status"]["conditions"]
        return str({c["type"]: c["status"] for c in conditions}["Ready"])

    kube.run("label", "node", "kwok-gpu-3", f"{label}=true")
    try:
        wait_until(lambda: ready_status() == "False", what="kwok-gpu-3 NotReady")
    finally:
        kube.run("label", "node", "kwok-gpu-3", f"{label}-")
    wait_until(lambda: ready_status() == "True", what="kwok-gpu-3 Ready again")
