"""What the agent knows about a pod's containers, and the pod status it reports (pure)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

CREATING = "ContainerCreating"
BACKOFF = "CrashLoopBackOff"


def now_rfc3339() -> str:
    """The current time as the API writes it (seconds precision, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRun:
    """One container as the agent runs it; exit_code set means finished for good."""

    name: str
    image: str
    restart_count: int = 0
    pid: int | None = None
    started_at: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    waiting_reason: str | None = CREATING
    waiting_message: str = ""
    last_terminated: dict[str, Any] | None = None
    termination_message: str = ""
    ready: bool = False
    has_probe: bool = False

    @property
    def running(self) -> bool:
        return self.pid is not None and self.exit_code is None and self.waiting_reason is None


def build_terminated(run: ContainerRun) -> dict[str, Any]:
    """The `terminated` state of a container that exited with run.exit_code."""
    code = run.exit_code if run.exit_code is not None else 137
    terminated = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "containerID": f"local://{run.pid}",
    }
    if run.termination_message:
        terminated["message"] = run.termination_message
    return terminated


def build_container_status(run: ContainerRun) -> dict[str, Any]:
    """One entry of status.containerStatuses."""
    if run.exit_code is not None:
        state: dict[str, Any] = {"terminated": build_terminated(run)}
    elif run.waiting_reason is not None:
        state = {"waiting": {"reason": run.waiting_reason, "message": run.waiting_message}}
    else:
        state = {"running": {"startedAt": run.started_at}}
    status = {
        "name": run.name,
        "image": run.image,
        "imageID": "",
        "ready": run.running and run.ready,
        "started": run.running,
        "restartCount": run.restart_count,
        "state": state,
        "lastState": {"terminated": run.last_terminated} if run.last_terminated else {},
    }
    if run.pid is not None:
        status["containerID"] = f"local://{run.pid}"
    return status


def compute_phase(runs: list[ContainerRun]) -> str:
    """Pending until a container started; Succeeded/Failed once all finished for good."""
    if all(run.exit_code is not None for run in runs):
        return "Succeeded" if all(run.exit_code == 0 for run in runs) else "Failed"
    if all(run.started_at is None for run in runs):
        return "Pending"
    return "Running"


def build_conditions(
    phase: str, ready: bool, now: str, previous: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pod conditions; lastTransitionTime kept from `previous` unless the status flipped."""
    before = {c["type"]: c for c in previous}
    finished = phase in ("Succeeded", "Failed")
    wanted = {
        "Initialized": True,
        "ContainersReady": ready,
        "Ready": ready,
        "PodScheduled": True,
    }
    conditions = []
    for kind, value in wanted.items():
        status = "True" if value else "False"
        old = before.get(kind, {})
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        condition = {"type": kind, "status": status, "lastTransitionTime": since or now}
        if kind in ("Ready", "ContainersReady") and not value:
            condition["reason"] = "PodCompleted" if finished else "ContainersNotReady"
        conditions.append(condition)
    return conditions


@dataclass
class PodReport:
    """Inputs of one status write."""

    runs: list[ContainerRun]
    pod_ip: str | None
    host_ip: str
    start_time: str
    message: str = ""
    reason: str = ""
    previous_conditions: list[dict[str, Any]] = field(default_factory=list)


def build_pod_status(report: PodReport, now: str) -> dict[str, Any]:
    """The whole status the agent writes with a merge patch (lists are replaced whole)."""
    phase = compute_phase(report.runs)
    ready = phase == "Running" and all(run.running and run.ready for run in report.runs)
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": report.host_ip,
        "hostIPs": [{"ip": report.host_ip}],
        "startTime": report.start_time,
        "conditions": build_conditions(phase, ready, now, report.previous_conditions),
        "containerStatuses": [build_container_status(run) for run in report.runs],
        "message": report.message or None,
        "reason": report.reason or None,
    }
    if report.pod_ip:
        status["podIP"] = report.pod_ip
        status["podIPs"] = [{"ip": report.pod_ip}]
    return status


def build_rejection(pod: dict[str, Any], host_ip: str, reason: str, message: str) -> dict[str, Any]:
    """Status of a pod the agent cannot run at all (phase Failed, with why)."""
    runs = [
        ContainerRun(c["name"], c.get("image", ""), exit_code=128, started_at=None)
        for c in pod["spec"]["containers"]
    ]
    report = PodReport(runs, None, host_ip, now_rfc3339(), message=message, reason=reason)
    status = build_pod_status(report, now_rfc3339())
    for entry in status["containerStatuses"]:
        entry["state"] = {"waiting": {"reason": reason, "message": message}}
    return status
