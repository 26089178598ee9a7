"""Pure failure handling: what Kubernetes says about a failed worker → a class → an action.

`classify_failure` reads only the pod object, strongest evidence first: the cluster's own word
that it disrupted the pod (DisruptionTarget condition, pod status reason), then the trainer's own
report (a JSON termination message), then the container's exit code and reason. `decide_action`
is a small ordered table over spec.failurePolicy.rules, like JobSet's failure policy.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from ringleader.models import FailureClass, FailurePolicy

Pod = Mapping[str, Any]
ActionKind = Literal["RestartWorker", "RestartGang", "FailJob"]

FAILURE_CLASSES: Final = frozenset(get_args(FailureClass))

# Failures that are the cluster's doing: by default they restart without using up maxRestarts.
NOT_THE_JOBS_FAULT: Final = frozenset({"Preempted", "NodeLost"})

# The reasons Kubernetes puts on a pod's DisruptionTarget condition.
DISRUPTION_CLASSES: Final[Mapping[str, FailureClass]] = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "EvictionByEvictionAPI": "Preempted",
    "TerminationByKubelet": "Preempted",  # node-pressure eviction
    "DeletionByTaintManager": "NodeLost",  # NoExecute taint, e.g. node unreachable
    "DeletionByPodGC": "NodeLost",  # its node object is gone
}
# The reasons the kubelet or the node lifecycle controller put on a failed pod's status.
POD_REASON_CLASSES: Final[Mapping[str, FailureClass]] = {
    "Evicted": "Preempted",
    "NodeLost": "NodeLost",
    "Terminated": "NodeLost",  # graceful node shutdown
    "Shutdown": "NodeLost",
}

IN_PLACE_TIMED_OUT: Final = "InPlaceRecoveryTimedOut"  # the reason of an escalated failure
MAX_MESSAGE: Final = 1024  # lastFailure.message is a summary; the pod keeps the full text


@dataclass(frozen=True)
class WorkerFailure:
    """One failed worker pod: its class and the evidence behind it."""

    failure_class: FailureClass
    pod: str
    uid: str | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Action:
    """What to do about a failure, and whether it uses up one of maxRestarts."""

    kind: ActionKind
    counts: bool


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


def _reported_class(message: str) -> tuple[FailureClass, str] | None:
    """The trainer's own verdict from a termination message {"failureClass": "Communication",
    "message": "..."}: the class and its explanation (else the whole message)."""
    try:
        report = json.loads(message)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("failureClass") not in FAILURE_CLASSES:
        return None
    klass = cast(FailureClass, report["failureClass"])
    return klass, str(report.get("message") or message)[:MAX_MESSAGE]


def _exit_class(code: int, reason: str) -> tuple[FailureClass, str]:
    """Class and an explanatory reason from a container's exit code and termination reason."""
    if reason == "OOMKilled":
        return "OutOfMemory", reason
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return "Unknown", f"{reason or 'Killed'} by {name}"
    return ("UserError" if code > 0 else "Unknown"), reason or "Error"


def classify_failure(pod: Pod) -> WorkerFailure:
    """The failure class of a failed worker pod, with the evidence that decided it."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name, uid = str(meta.get("name") or ""), meta.get("uid")
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
        return WorkerFailure("Unknown", name, uid, None, pod_reason, pod_message)
    message = str(done.get("message") or "")[:MAX_MESSAGE]
    reported = _reported_class(message)
    if reported is not None:
        return WorkerFailure(reported[0], name, uid, code, "ReportedByTrainer", reported[1])
    klass, reason = _exit_class(code or 0, str(done.get("reason") or ""))
    return WorkerFailure(klass, name, uid, code, reason, message)


def node_deleted_failure(pod: Pod, node: str) -> WorkerFailure:
    """The failure of a worker whose node was deleted (lostnodes.on_deleted_nodes)."""
    meta = pod.get("metadata") or {}
    message = f"its node {node} was deleted"
    return WorkerFailure(
        "NodeLost", str(meta.get("name") or ""), meta.get("uid"), None, "NodeDeleted", message
    )


def hang_failure(report: Mapping[str, Any]) -> WorkerFailure:
    """The failure a detected hang (status.hang) stands for, naming the stalled workers."""
    stalled = list(report.get("stalledPods") or [])
    message = (
        f"no step for {report.get('stalledSeconds')}s after step {report.get('step')}; "
        f"stalled: {', '.join(stalled) or 'unknown'}"
    )
    return WorkerFailure("Hang", stalled[0] if stalled else "", None, None, "HangDetected", message)


def decide_action(policy: FailurePolicy | None, failure: WorkerFailure) -> Action:
    """The first rule that matches the failure's class and exit code; else the default.

    By default a failed pod is replaced in place and the survivors re-form the group with it
    (they keep their nodes and skip a restart); a hang restarts the gang, since every worker
    is stuck in it. An in-place recovery that does not lead to a step becomes a gang restart
    (see `stalled_in_place`).
    """
    for rule in (policy.rules if policy else None) or []:
        if rule.classes is not None and failure.failure_class not in rule.classes:
            continue
        if rule.exit_codes is not None and failure.exit_code not in rule.exit_codes:
            continue
        return Action(rule.action, rule.count_towards_max_restarts)
    kind: ActionKind = "RestartGang" if failure.failure_class == "Hang" else "RestartWorker"
    return Action(kind, failure.failure_class not in NOT_THE_JOBS_FAULT)


def describe(failure: WorkerFailure) -> str:
    """E.g. "worker train-worker-1-a0 failed (OutOfMemory, exit 137)"."""
    if failure.failure_class == "Hang":
        return f"hang detected: {failure.message}"
    if failure.reason == IN_PLACE_TIMED_OUT:
        return f"in-place recovery of {failure.pod or 'a worker'} did not resume training"
    evidence = f"exit {failure.exit_code}" if failure.exit_code is not None else failure.reason
    detail = f"{failure.failure_class}, {evidence}" if evidence else failure.failure_class
    return f"worker {failure.pod} failed ({detail})"


SEVERITY: Final[Mapping[ActionKind, int]] = {"RestartWorker": 0, "RestartGang": 1, "FailJob": 2}


def most_severe(
    decided: list[tuple[WorkerFailure, Action]],
) -> tuple[WorkerFailure, Action] | None:
    """The failure whose action goes furthest (fail > gang > worker); ties go to the first."""
    if not decided:
        return None
    return max(decided, key=lambda pair: SEVERITY[pair[1].kind])  # max keeps the first of ties


def gang_backoff_seconds(failures_in_a_row: int) -> float:
    """Wait before a gang restart: none after one failure, then 2 s doubling up to 60 s for
    each further failure with no checkpoint committed in between (a crash loop)."""
    return 0.0 if failures_in_a_row <= 1 else float(min(60, 2 ** (failures_in_a_row - 1)))


def stalled_in_place(
    last_failure: Mapping[str, Any], timeout_seconds: int, progressed: bool, waited: float
) -> WorkerFailure | None:
    """The failure to escalate when replacing a worker in place did not bring training back:
    every worker has run for timeout_seconds since the failure and no step was completed."""
    if last_failure.get("action") != "RestartWorker" or progressed or waited < timeout_seconds:
        return None
    pod = str(last_failure.get("pod") or "")
    message = (
        f"no training step within {timeout_seconds}s after {pod or 'a worker'} was replaced "
        f"(inPlaceTimeoutSeconds); first failure: {last_failure.get('message') or '-'}"
    )[:MAX_MESSAGE]
    return WorkerFailure(
        last_failure.get("class") or "Unknown",
        pod,
        last_failure.get("podUID"),
        last_failure.get("exitCode"),
        IN_PLACE_TIMED_OUT,
        message,
    )
