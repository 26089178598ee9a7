"""What the launcher tells the operator when its workers failed for good (pure).

The operator classifies a failed pod by its exit code unless the termination message names a
class. A worker's Python exception says more than the launcher's exit code 1: a gloo/NCCL or
store error is Communication, not the user's code; anything else raised is UserError. A worker
killed by a signal is left to the exit code (and to the kubelet's own reason, e.g. OOMKilled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ringleader_client import contract
from ringleader_client.stopping import EXIT_STOP_TIMEOUT

# Exceptions and messages that come from the collectives or the rendezvous, not the user's code.
COMMUNICATION_MARKERS = (
    "DistBackendError",
    "DistNetworkError",
    "DistStoreError",
    "NCCL",
    "gloo",
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
)
EXIT_REJOIN = contract.EXIT_REJOIN  # the worker left for a group that re-forms (worker.py)
MESSAGE_LIMIT = 512


@dataclass(frozen=True)
class AgentEnd:
    """How the agent ended: the pod's exit code and, when it can be named, the failure's class
    and explanation for the termination message."""

    code: int
    failure: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerDeath:
    """One worker's end as the elastic agent saw it."""

    exitcode: int  # negative: killed by that signal
    message: str


def failure_verdict(failure_class: str, message: str) -> dict[str, str]:
    """The termination message's verdict: a failure class (contract.COMMUNICATION...) and why."""
    return {contract.FAILURE_CLASS: failure_class, contract.FAILURE_MESSAGE: message}


def read_failure_message(raw: object) -> str:
    """A worker's failure message as torch's elastic agent hands it over: the text itself, or,
    when the worker recorded an exception, {"message": text, "extraInfo": {traceback, time}}."""
    if isinstance(raw, dict):
        return str(raw.get("message") or "")
    return str(raw or "")


def judge(deaths: list[WorkerDeath]) -> AgentEnd:
    """The pod's exit code and verdict from its workers' last failures (first one decides)."""
    if not deaths:
        return AgentEnd(1)
    first = deaths[0]
    if first.exitcode < 0:  # e.g. SIGKILL by the OOM killer: the exit code tells it all
        return AgentEnd(128 - first.exitcode)
    summary = first.message.strip().splitlines()[0][:MESSAGE_LIMIT] if first.message.strip() else ""
    if first.exitcode in (EXIT_REJOIN, EXIT_STOP_TIMEOUT):
        why = "the group kept losing members" if first.exitcode == EXIT_REJOIN else "a peer died"
        return AgentEnd(1, failure_verdict(contract.COMMUNICATION, why))
    if any(marker in first.message for marker in COMMUNICATION_MARKERS):
        return AgentEnd(1, failure_verdict(contract.COMMUNICATION, summary))
    return AgentEnd(1, failure_verdict(contract.USER_ERROR, summary or "worker failed"))
