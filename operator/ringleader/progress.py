"""Mirror the trainer's progress into status: which pod to ask, and what to write.

The trainer needs no cluster credentials: every worker pod's launcher serves GET /progress
(constants.PROGRESS_PORT) from files that global rank 0 writes, and the operator polls one
running worker of the current attempt. Only `status.progress` and `status.checkpoint` are
written here; the reconcile loop owns every other status field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ringleader import constants as c

Obj = dict[str, Any]
ACTIVE_PHASES = frozenset({c.PHASE_STARTING, c.PHASE_RUNNING, c.PHASE_RESTARTING})


def _rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_reporter(children: Sequence[Mapping[str, Any]], attempt: int) -> Mapping[str, Any] | None:
    """The running worker of the current attempt with the lowest index, if it has an IP."""
    candidates = []
    for pod in children:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        status = pod.get("status") or {}
        if (
            pod.get("kind") == "Pod"
            and labels.get(c.LABEL_ROLE) == c.ROLE_WORKER
            and labels.get(c.LABEL_RESTART_ATTEMPT) == str(attempt)
            and status.get("phase") == "Running"
            and status.get("podIP")
        ):
            candidates.append((int(labels.get(c.LABEL_REPLICA_INDEX, "0")), pod))
    return min(candidates, key=lambda item: item[0])[1] if candidates else None


def worker_names(children: Sequence[Mapping[str, Any]], attempt: int) -> list[str]:
    """Names of the worker pods of one restart attempt."""
    names = []
    for pod in children:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if (
            pod.get("kind") == "Pod"
            and labels.get(c.LABEL_ROLE) == c.ROLE_WORKER
            and labels.get(c.LABEL_RESTART_ATTEMPT) == str(attempt)
        ):
            names.append(str(pod["metadata"]["name"]))
    return sorted(names)


def read_final_report(children: Sequence[Mapping[str, Any]], attempt: int) -> Obj | None:
    """The last progress report a finished worker left as its termination message.

    The launcher writes it when its workers end, so the final step and checkpoint reach status
    although the /progress endpoint is gone with the pod.
    """
    finished = []
    for pod in children:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(c.LABEL_ROLE) != c.ROLE_WORKER:
            continue
        if labels.get(c.LABEL_RESTART_ATTEMPT) != str(attempt):
            continue
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((container.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                finished.append((int(labels.get(c.LABEL_REPLICA_INDEX, "0")), message))
    for _, message in sorted(finished):
        try:
            report = json.loads(message)
        except ValueError:
            continue  # not ours: a user's own last words
        if isinstance(report, dict) and report.get("step") is not None:
            return report
    return None


def build_progress_status(report: Mapping[str, Any]) -> Obj:
    """status.progress and status.checkpoint from the trainer's /progress document."""
    progress: Obj = {"step": int(report["step"])}
    if report.get("epoch") is not None:
        progress["epoch"] = int(report["epoch"])
    if report.get("loss") is not None:
        progress["loss"] = round(float(report["loss"]), 6)
    if report.get("samples_per_second") is not None:
        progress["samplesPerSecond"] = round(float(report["samples_per_second"]), 1)
    if report.get("updated_at") is not None:
        progress["updatedAt"] = _rfc3339(float(report["updated_at"]))
    out: Obj = {"progress": progress}
    checkpoint = report.get("checkpoint")
    if checkpoint and checkpoint.get("step") is not None:
        out["checkpoint"] = {
            "step": int(checkpoint["step"]),
            "path": str(checkpoint.get("path", "")),
            "time": _rfc3339(float(checkpoint.get("time") or report.get("updated_at") or 0)),
        }
    return out


def plan_progress_patch(status: Mapping[str, Any], report: Mapping[str, Any] | None) -> Obj | None:
    """The status merge patch for a new report, or None when it says nothing new."""
    if not report or report.get("step") is None:
        return None
    wanted = build_progress_status(report)
    patch = {key: value for key, value in wanted.items() if status.get(key) != value}
    return patch or None
