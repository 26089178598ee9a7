"""What the cluster looked like when an e2e test gave up waiting: the nodes' pressure and taints,
the test's pods and why they are not running, the operator's pod. CI shows only a test's failure
message, so a wait that times out says in one line whether the nodes, the pods or the operator
stood still."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.kube import Kube, KubectlError, is_live
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE

# Node conditions that are news when True (Ready is news when it is not).
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def cluster_state(kube: Kube, namespace: str) -> str:
    """One line: nodes that are not well, the namespace's pods, the operator's pod."""
    parts = []
    describers: list[tuple[str, Callable[[], str]]] = [
        ("nodes", lambda: _nodes(kube)),
        (f"pods in {namespace}", lambda: _pods(kube, namespace)),
        ("operator", lambda: _pods(kube, OPERATOR_NAMESPACE)),
    ]
    for what, describe in describers:
        try:
            parts.append(f"{what}: {describe() or 'none'}")
        except (KubectlError, KeyError, ValueError) as error:  # say so; the test's own error stands
            parts.append(f"{what}: unknown ({error})")
    return "; ".join(parts)


def _nodes(kube: Kube) -> str:
    items = kube.get("nodes")["items"]
    unwell = [line for node in items if (line := _unwell(node))]
    return ", ".join(unwell) or f"{len(items)} Ready, no pressure"


def _unwell(node: dict[str, Any]) -> str:
    """'<name> <what is wrong>' or '' for a Ready node with no pressure and no taint of trouble."""
    status = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    wrong = [kind for kind in PRESSURES if status.get(kind) == "True"]
    if status.get("Ready") != "True":
        wrong.insert(0, f"Ready={status.get('Ready', 'absent')}")
    taints = [t["key"] for t in node.get("spec", {}).get("taints", []) if "node." in t["key"]]
    wrong += [f"taint {key}" for key in taints]
    return f"{node['metadata']['name']} {'+'.join(wrong)}" if wrong else ""


def _pods(kube: Kube, namespace: str) -> str:
    return ", ".join(_pod(pod) for pod in kube.get("pods", namespace=namespace)["items"])


def _pod(pod: dict[str, Any]) -> str:
    """'<name> <phase>' and, where there is one, why: unscheduled, waiting, or the last exit."""
    status = pod.get("status", {})
    said = [status.get("phase", "?")]
    for condition in status.get("conditions", []):
        if condition["type"] == "PodScheduled" and condition["status"] != "True":
            said.append(f"unscheduled: {condition.get('message', '')}")
    for container in status.get("containerStatuses", []):
        waiting = container.get("state", {}).get("waiting")
        last = container.get("lastState", {}).get("terminated")
        if waiting:
            said.append(f"{container['name']} waiting: {waiting.get('reason')}")
        if container.get("restartCount"):
            ended = f", last {last.get('reason')} exit {last.get('exitCode')}" if last else ""
            said.append(f"{container['name']} restarts {container['restartCount']}{ended}")
    if not is_live(pod):
        said.append("being deleted")
    return f"{pod['metadata']['name']} {' '.join(said)}"
