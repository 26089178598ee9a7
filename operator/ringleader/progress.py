"""Mirror the trainer's progress into status: which pod to ask, and what to write.

The trainer needs no cluster credentials: every worker pod's launcher serves GET /progress
(constants.PROGRESS_PORT) from files that global rank 0 writes, and the operator polls one
running worker of the current attempt. Only `status.progress` and `status.checkpoint` are
written here; the reconcile loop owns every other status field (and writes the finished
workers' last report with the phase that ends the job).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ringleader import constants as c
from ringleader.builders import parse_job
from ringleader.status import parse_time
from ringleader.workerenv import compute_nproc_per_node

Obj = dict[str, Any]
ACTIVE_PHASES = frozenset({c.PHASE_STARTING, c.PHASE_RUNNING, c.PHASE_RESIZING, c.PHASE_RESTARTING})
# Phases in which a stalled step counter is a hang.
TRAINING_PHASES = frozenset({c.PHASE_RUNNING, c.PHASE_RESIZING})


def _rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_reporter(
    children: Sequence[Mapping[str, Any]], attempt: int, unreachable: Collection[str] = ()
) -> Mapping[str, Any] | None:
    """The running worker of the current attempt with the lowest index and an IP, passing over
    those (by uid) that did not answer lately: a pod on a vanished node looks Running for a
    minute or more, and every launcher serves the same progress."""
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
            and (pod.get("metadata") or {}).get("uid") not in unreachable
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
    if isinstance(report.get("world_size"), int) and report["world_size"] > 0:
        progress["worldSize"] = report["world_size"]
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


def detect_resize(
    status: Mapping[str, Any], report: Mapping[str, Any] | None
) -> tuple[int, int] | None:
    """(old, new) group size in processes when this report's differs from the one in status."""
    old = (status.get("progress") or {}).get("worldSize")
    new = (report or {}).get("world_size")
    if not isinstance(old, int) or not isinstance(new, int) or new <= 0 or old == new:
        return None
    return old, new


def describe_resize(job: Mapping[str, Any], old: int, new: int) -> str:
    """The Resized event's message: from, to, and why as far as the job's spec and status tell."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    workers = f"{status.get('readyReplicas', 0)}/{spec.get('replicas')} workers ready"
    why = _resize_cause(job, old, new)
    return f"the training group re-formed from {old} to {new} processes: {why}; {workers}"


def _resize_cause(job: Mapping[str, Any], old: int, new: int) -> str:
    if new > old:
        return "workers joined (scaled up, or capacity came back)"
    status = job.get("status") or {}
    last = status.get("lastFailure") or {}
    failed = parse_time(last.get("time"))
    # Only a failure since the last report at the old size can explain this shrink.
    before = parse_time((status.get("progress") or {}).get("updatedAt"))
    if last.get("pod") and failed and (before is None or failed >= before):
        return f"after {last['pod']} was lost ({last.get('class')})"
    spec = parse_job(job).spec
    if spec.replicas * compute_nproc_per_node(spec) < old:
        return "workers were removed (scaled down)"
    # Not scaled down and no failure reported: pods that still look Running left the group,
    # as on a node that vanished (Kubernetes reports such pods only after 40 s or more).
    return "workers stopped answering without a word (a lost node?)"


def resize_seconds(status: Mapping[str, Any], report: Mapping[str, Any]) -> float | None:
    """From the last report at the old size (in status) to this first one at the new size."""
    before = (status.get("progress") or {}).get("updatedAt")
    after = report.get("updated_at")
    if not before or not isinstance(after, int | float):
        return None
    then = parse_time(before)
    return max(float(after) - then.timestamp(), 0.0) if then else None
