"""What the operator reads from a child object: its role, restart attempt, replica index, and
whether a pod is leaving, finished, ready or running (pure; children are the API's dicts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ringleader import constants as c
from ringleader.apitime import parse_time

Obj = Mapping[str, Any]
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


def labels(obj: Obj) -> Mapping[str, str]:
    """The object's labels ({} without any)."""
    found: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return found


def name_of(obj: Obj) -> str:
    """The object's name."""
    return str((obj.get("metadata") or {}).get("name") or "")


def uid_of(obj: Obj) -> str | None:
    """The object's uid, when the API has given it one."""
    uid = (obj.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def is_pod(obj: Obj) -> bool:
    """A Pod (children of other kinds share the cache)."""
    return bool(obj.get("kind", "Pod") == "Pod")


def is_worker(obj: Obj) -> bool:
    """A worker pod of some restart attempt."""
    return obj.get("kind") == "Pod" and labels(obj).get(c.LABEL_ROLE) == c.ROLE_WORKER


def attempt_of(pod: Obj) -> int | None:
    """The restart attempt a worker pod belongs to (its label)."""
    value = labels(pod).get(c.LABEL_RESTART_ATTEMPT)
    return int(value) if value is not None and value.isdigit() else None


def index_of(pod: Obj) -> int:
    """The replica index of a worker pod (-1 without one)."""
    value = labels(pod).get(c.LABEL_REPLICA_INDEX, "")
    return int(value) if value.isdigit() else -1


def in_attempt(pod: Obj, attempt: int) -> bool:
    """A worker pod of this restart attempt, whatever its state (only workers carry the label)."""
    return attempt_of(pod) == attempt


def is_leaving(pod: Obj) -> bool:
    """Being deleted: it has a deletionTimestamp."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def phase_of(pod: Obj) -> str:
    """The pod's phase; Pending until the API says otherwise."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def exited_cleanly(pod: Obj) -> bool:
    """Every container has terminated with exit code 0: Succeeded, or about to be. A kubelet
    writes the containers' states first and the pod's phase a moment later; in between the pod
    is Running and not Ready."""
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    exits = [((s.get("state") or {}).get("terminated") or {}).get("exitCode") for s in statuses]
    return bool(containers) and len(exits) == len(containers) and all(e == 0 for e in exits)


def is_finished(pod: Obj) -> bool:
    """Succeeded or Failed."""
    return phase_of(pod) in FINISHED_PHASES


def is_active(pod: Obj) -> bool:
    """A pod not yet finished and not already being deleted."""
    return is_pod(pod) and not is_leaving(pod) and not is_finished(pod)


def is_ready(pod: Obj) -> bool:
    """Running, with its Ready condition True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)
    return phase_of(pod) == "Running" and ready


def node_of(pod: Obj) -> str | None:
    """The node the pod is bound to, if any."""
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


def current_workers(children: Iterable[Obj], attempt: int) -> list[Obj]:
    """The attempt's worker pods that are not being deleted."""
    return [p for p in children if in_attempt(p, attempt) and not is_leaving(p)]


def worker_names(children: Iterable[Obj], attempt: int) -> list[str]:
    """Names of the attempt's worker pods, sorted."""
    return sorted(name_of(p) for p in children if in_attempt(p, attempt))


def running_since(pod: Obj) -> datetime | None:
    """When the pod's container started running; None unless it runs."""
    if phase_of(pod) != "Running":
        return None
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        started = ((container.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            return parse_time(started)
    return parse_time(status.get("startTime"))


def created_at(obj: Obj) -> datetime | None:
    """The object's creationTimestamp."""
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def termination_messages(pod: Obj) -> list[str]:
    """The messages its terminated containers left (the trainer's last words)."""
    out = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        message = ((container.get("state") or {}).get("terminated") or {}).get("message")
        if message:
            out.append(str(message))
    return out
