"""What failed, and why: a failed worker pod → a failure class with its evidence (pure).

`classify_failure` reads only the pod object, strongest evidence first: the cluster's own word
that it disrupted the pod (DisruptionTarget condition, pod status reason), then the trainer's own
report (a JSON termination message), then the container's exit code and reason. A deleted node
and a detected hang are failures too, made here from what the node watch and the progress
poller saw. What to do about a failure is failurepolicy.py's concern.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ringleader import pods, reports
from ringleader.constants import FailureClass
from ringleader.statusmodels import HangReport

Pod = Mapping[str, Any]

# The reasons Kubernetes puts on a pod's DisruptionTarget condition.
DISRUPTION_CLASSES: Final[Mapping[str, FailureClass]] = {
    "PreemptionByScheduler": FailureClass.PREEMPTED,
    "PreemptionByKubeScheduler": FailureClass.PREEMPTED,
    "EvictionByEvictionAPI": FailureClass.PREEMPTED,
    "TerminationByKubelet": FailureClass.PREEMPTED,  # node-pressure eviction
    "DeletionByTaintManager": FailureClass.NODE_LOST,  # NoExecute taint, e.g. node unreachable
    "DeletionByPodGC": FailureClass.NODE_LOST,  # its node object is gone
}
# The reasons the kubelet or the node lifecycle controller put on a failed pod's status.
POD_REASON_CLASSES: Final[Mapping[str, FailureClass]] = {
    "Evicted": FailureClass.PREEMPTED,
    "NodeLost": FailureClass.NODE_LOST,
    "Terminated": FailureClass.NODE_LOST,  # graceful node shutdown
    "Shutdown": FailureClass.NODE_LOST,
}

IN_PLACE_TIMED_OUT: Final = "InPlaceRecoveryTimedOut"  # the reason of an escalated failure
NODE_DELETED: Final = "NodeDeleted"
POD_DELETED: Final = "PodDeleted"  # a worker of a group that restarts whole was deleted
REPORTED_BY_TRAINER: Final = "ReportedByTrainer"
MAX_MESSAGE: Final = 1024  # lastFailure.message is a summary; the pod keeps the full text


@dataclass(frozen=True)
class WorkerFailure:
    """One failed worker: its class and the evidence behind it."""

    failure_class: FailureClass
    pod: str
    uid: str | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""


def _terminated(pod: Pod) -> Mapping[str, Any] | None:
    """The first container (init containers first) that terminated with a non-zero code."""
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        done = (cs.get("state") or {}).get("terminated")
        if done and done.get("exitCode"):
            return dict(done)
    return None


def _disruption(pod: Pod) -> tuple[str, str] | None:
    """(reason, message) of the pod's DisruptionTarget condition when it is True."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return str(cond.get("reason") or ""), str(cond.get("message") or "")
    return None


def _exit_class(code: int, reason: str) -> tuple[FailureClass, str]:
    """Class and an explanatory reason from a container's exit code and termination reason."""
    if reason == "OOMKilled":
        return FailureClass.OUT_OF_MEMORY, reason
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return FailureClass.UNKNOWN, f"{reason or 'Killed'} by {name}"
    klass = FailureClass.USER_ERROR if code > 0 else FailureClass.UNKNOWN
    return klass, reason or "Error"


def classify_failure(pod: Pod) -> WorkerFailure:
    """The failure class of a failed worker pod, with the evidence that decided it."""
    name, uid = pods.name_of(pod), pods.uid_of(pod)
    status = pod.get("status") or {}
    done = _terminated(pod)
    code = int(done["exitCode"]) if done else None
    disrupted = _disruption(pod)
    if disrupted and disrupted[0] in DISRUPTION_CLASSES:
        reason, message = disrupted
        return WorkerFailure(DISRUPTION_CLASSES[reason], name, uid, code, reason, message)
    pod_reason, pod_message = str(status.get("reason") or ""), str(status.get("message") or "")
    if pod_reason in POD_REASON_CLASSES:
        klass = POD_REASON_CLASSES[pod_reason]
        return WorkerFailure(klass, name, uid, code, pod_reason, pod_message)
    if done is None:
        return WorkerFailure(FailureClass.UNKNOWN, name, uid, None, pod_reason, pod_message)
    message = str(done.get("message") or "")[:MAX_MESSAGE]
    reported = reports.parse_failure_verdict(message)
    if reported is not None:
        klass, why = reported
        return WorkerFailure(klass, name, uid, code, REPORTED_BY_TRAINER, why[:MAX_MESSAGE])
    klass, reason = _exit_class(code or 0, str(done.get("reason") or ""))
    return WorkerFailure(klass, name, uid, code, reason, message)


def node_deleted_failure(pod: Pod, node: str) -> WorkerFailure:
    """The failure of a worker whose node was deleted (lostnodes.on_deleted_nodes)."""
    message = f"its node {node} was deleted"
    return WorkerFailure(
        FailureClass.NODE_LOST, pods.name_of(pod), pods.uid_of(pod), None, NODE_DELETED, message
    )


def pod_deleted_failure(pod: Pod) -> WorkerFailure:
    """The failure of a worker taken out of a group that cannot take in a replacement (a
    TensorFlow job's): its pod was deleted by someone else than the operator. Not the job's
    fault, as for a preemption."""
    message = "its pod was deleted: a TensorFlow group restarts whole"
    return WorkerFailure(
        FailureClass.PREEMPTED, pods.name_of(pod), pods.uid_of(pod), None, POD_DELETED, message
    )


def hang_failure(report: HangReport) -> WorkerFailure:
    """The failure a detected hang (status.hang) stands for, naming the stalled workers."""
    stalled = list(report.stalled_pods or [])
    message = (
        f"no step for {report.stalled_seconds}s after step {report.step}; "
        f"stalled: {', '.join(stalled) or 'unknown'}"
    )
    pod = stalled[0] if stalled else ""
    return WorkerFailure(FailureClass.HANG, pod, None, None, "HangDetected", message)


def describe(failure: WorkerFailure) -> str:
    """E.g. "worker train-worker-1-a0 failed (OutOfMemory, exit 137)"."""
    if failure.failure_class == FailureClass.HANG:
        return f"hang detected: {failure.message}"
    if failure.reason == IN_PLACE_TIMED_OUT:
        return f"in-place recovery of {failure.pod or 'a worker'} did not resume training"
    evidence = f"exit {failure.exit_code}" if failure.exit_code is not None else failure.reason
    detail = f"{failure.failure_class}, {evidence}" if evidence else failure.failure_class
    return f"worker {failure.pod} failed ({detail})"
