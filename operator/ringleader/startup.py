"""Workers that do not start: why, in a line, and spec.scheduling.startupTimeoutSeconds (pure).

A worker pod that cannot be scheduled (no node has the GPUs) or cannot start (its image cannot
be pulled) leaves the group waiting for it with no end: every other pod holds its GPUs and
nothing trains. The phase's message says why the first such pod waits, and once it has waited
longer than startupTimeoutSeconds since it was created, the job fails with that reason and its
pods are removed. An elastic job waits only while fewer than its minimum run: above it, it
trains, and a pending worker joins when capacity comes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringleader import pods
from ringleader.models import DistributedTrainingJob

Pod = Mapping[str, Any]
MESSAGE_LIMIT = 200  # characters of a scheduler's or kubelet's message kept in ours
# Container waiting reasons that are the normal course of starting, not a problem to report.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})


@dataclass(frozen=True)
class Waiting:
    """A worker pod of the current attempt that is not running yet."""

    name: str
    created: datetime
    why: str  # "" when nothing is wrong that the pod's status tells


def explain_waiting(pod: Pod) -> str:
    """Why a pod is not running, from its scheduling condition or its container's waiting state;
    "" when it is simply starting."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return _shorten(f"{condition.get('reason')}: {condition.get('message', '')}")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in STARTING_REASONS:
            return _shorten(f"{reason}: {waiting.get('message', '')}")
    return ""


def _shorten(text: str) -> str:
    text = " ".join(text.split()).rstrip(": ")
    return text if len(text) <= MESSAGE_LIMIT else f"{text[: MESSAGE_LIMIT - 3]}..."


def find_waiting(workers: Sequence[Pod], attempt: int) -> list[Waiting]:
    """The attempt's worker pods that exist, are not being deleted and do not run yet, oldest
    first."""
    out = []
    for pod in pods.current_workers(workers, attempt):
        created = pods.created_at(pod)
        if pods.phase_of(pod) == "Pending" and created is not None:
            out.append(Waiting(pods.name_of(pod), created, explain_waiting(pod)))
    return sorted(out, key=lambda w: (w.created, w.name))


def waiting_note(workers: Sequence[Pod], attempt: int) -> str:
    """ "; <pod> waits: <why>" for the first waiting worker with a reason, else ""."""
    for waiting in find_waiting(workers, attempt):
        if waiting.why:
            return f"; {waiting.name} waits: {waiting.why}"
    return ""


def startup_timeout(
    job: DistributedTrainingJob, workers: Sequence[Pod], attempt: int, now: datetime
) -> tuple[str | None, float | None]:
    """(why the job fails with StartupTimeout, if it is due; else seconds until it would be due,
    if it can be)."""
    scheduling = job.spec.scheduling
    limit = scheduling.startup_timeout_seconds if scheduling else None
    suspended = bool(job.spec.run_policy and job.spec.run_policy.suspend)
    if limit is None or suspended:
        return None, None
    needed = job.spec.fewest_workers()
    running = sum(1 for pod in workers if _running_in(pod, attempt))
    waiting = find_waiting(workers, attempt)
    if running >= needed or not waiting:
        return None, None
    oldest = waiting[0]
    waited = (now - oldest.created).total_seconds()
    if waited < limit:
        return None, limit - waited
    why = f" ({oldest.why})" if oldest.why else ""
    message = (
        f"{oldest.name} was not running {int(waited)}s after it was created{why}; "
        f"{running} of the {needed} workers the job needs run "
        f"(spec.scheduling.startupTimeoutSeconds: {limit})"
    )
    return message, None


def _running_in(pod: Pod, attempt: int) -> bool:
    return (
        pods.in_attempt(pod, attempt)
        and not pods.is_leaving(pod)
        and pods.phase_of(pod)
        in (
            "Running",
            "Succeeded",
        )
    )
