"""Pods stuck Terminating on a lost node: which ones the operator force-deletes, and when (pure).

A pod is deleted in two steps: the API server sets its deletionTimestamp, and the kubelet removes
it once its containers have stopped. On a lost node no kubelet does the second step, so the pod
stays Terminating for good, and its replacement (a worker's, whose slot it holds; the
rendezvous store's, whose name it holds) can never be created. Kubernetes leaves such pods alone
unless someone taints the node out-of-service; the operator force-deletes its own once their
grace period and a margin are over and their node is NotReady, Unknown or gone.

A pod whose Node object was deleted is force-deleted at once, terminating or not: the pod garbage
collector would do the same, but only after 40 s or more during which the pod still looks Running
and Ready, and its peers wait for it in a collective that cannot finish.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from ringleader import constants as c
from ringleader.apitime import parse_time

Obj = Mapping[str, Any]


class _Deleting(NamedTuple):
    name: str
    node: str
    since_grace_ended: float  # seconds; negative while the grace period lasts


def _deleting(pods: Iterable[Obj], now: datetime) -> list[_Deleting]:
    """The pods being deleted that are on a node (unscheduled ones go at once)."""
    found = []
    for pod in pods:
        meta, node = pod.get("metadata") or {}, (pod.get("spec") or {}).get("nodeName")
        ends = parse_time(meta.get("deletionTimestamp"))
        if pod.get("kind", "Pod") != "Pod" or ends is None or not node:
            continue
        # The deletionTimestamp already includes the grace period: the API server sets it to
        # the time of the delete request plus deletionGracePeriodSeconds.
        found.append(_Deleting(str(meta["name"]), str(node), (now - ends).total_seconds()))
    return found


def _stuck(pods: Iterable[Obj], now: datetime) -> list[_Deleting]:
    return [d for d in _deleting(pods, now) if d.since_grace_ended >= c.FORCE_DELETE_MARGIN_SECONDS]


def nodes_to_check(pods: Iterable[Obj], now: datetime) -> set[str]:
    """The nodes of the pods stuck terminating: only for these is node readiness worth a read."""
    return {d.node for d in _stuck(pods, now)}


def node_is_lost(node: Obj | None) -> bool:
    """True when the node is gone, or its Ready condition is False or Unknown."""
    if node is None:
        return True
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") != "True")
    return False  # never reported: not known to be lost


def force_deletions(
    pods: Iterable[Obj], lost_nodes: Collection[str], now: datetime
) -> list[tuple[str, str]]:
    """(pod name, why) for each pod stuck terminating on a lost node."""
    return sorted(
        (
            d.name,
            f"pod {d.name} was still terminating {int(d.since_grace_ended)}s after its grace "
            f"period, on lost node {d.node}: force-deleted",
        )
        for d in _stuck(pods, now)
        if d.node in lost_nodes
    )


def bound_nodes(pods: Iterable[Obj]) -> set[str]:
    """The nodes these pods are bound to."""
    return {str(node) for pod in pods if (node := (pod.get("spec") or {}).get("nodeName"))}


def on_deleted_nodes(pods: Iterable[Obj], deleted_nodes: Collection[str]) -> dict[str, str]:
    """Pod name → node, for the pods bound to a node that was deleted.

    Their kubelet is gone with the node object (or no longer registered): nothing will stop or
    report on them, and the pod garbage collector removes them only 40 s or more later.
    """
    found = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if pod.get("kind", "Pod") == "Pod" and node in deleted_nodes:
            found[str((pod.get("metadata") or {})["name"])] = str(node)
    return found


def seconds_until_next_check(pods: Iterable[Obj], now: datetime) -> float | None:
    """When the deleting pods next need a look: when one becomes stuck, or again while it is."""
    waits = []
    for deleting in _deleting(pods, now):
        left = c.FORCE_DELETE_MARGIN_SECONDS - deleting.since_grace_ended
        waits.append(left if left > 0 else float(c.STUCK_POD_RECHECK_SECONDS))
    return min(waits, default=None)
