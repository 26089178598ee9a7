"""Which fault a request meets, if any: the decision alone, no I/O (pure but for the random
generator it is given)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

# The writes an API server can refuse with 409: a create of a name taken, a replace or a delete
# of a version or uid no longer current. A merge or strategic PATCH is retried inside the server
# and never meets a conflict unless it carries a resourceVersion (a guarded patch).
CONFLICTING = frozenset({"POST", "PUT", "DELETE"})


class Kind(StrEnum):
    """What a request can meet on its way."""

    THROTTLED = "429"  # the API server's priority and fairness refusing it
    SERVER_ERROR = "500"
    CONFLICT = "409"  # a write that lost a race (see CONFLICTING)
    SLOW = "slow"  # answered, late
    WATCH_CUT = "watch-cut"  # a watch stream dropped mid-way


@dataclass(frozen=True)
class Faults:
    """How often each fault happens (a share of the requests it can apply to)."""

    throttled: float = 0.0
    server_error: float = 0.0
    conflict: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.5
    watch_cut_after: float | None = None  # seconds a watch stream lasts at most

    @classmethod
    def none(cls) -> Faults:
        """Every request passes."""
        return cls()


@dataclass(frozen=True)
class Fault:
    """One request's fault."""

    kind: Kind
    seconds: float = 0.0  # SLOW: the delay; WATCH_CUT: how long the stream lives


def is_watch(method: str, query: dict[str, str]) -> bool:
    """A watch: a GET with watch=true (or 1)."""
    return method == "GET" and query.get("watch", "").lower() in ("true", "1")


def can_conflict(method: str, guarded: bool) -> bool:
    """Whether an API server could answer this request 409 Conflict."""
    return method in CONFLICTING or (method == "PATCH" and guarded)


def decide(
    faults: Faults, method: str, query: dict[str, str], rng: random.Random, guarded: bool = False
) -> Fault | None:
    """The fault this request meets, or None when it passes untouched; `guarded`: its body
    names a resourceVersion (a patch that can conflict)."""
    if is_watch(method, query):
        cut = faults.watch_cut_after
        return None if cut is None else Fault(Kind.WATCH_CUT, rng.uniform(cut / 2, cut))
    draw = rng.random()
    for kind, share in (
        (Kind.THROTTLED, faults.throttled),
        (Kind.SERVER_ERROR, faults.server_error),
        (Kind.CONFLICT, faults.conflict if can_conflict(method, guarded) else 0.0),
        (Kind.SLOW, faults.slow),
    ):
        if draw < share:
            return Fault(kind, faults.slow_seconds if kind is Kind.SLOW else 0.0)
        draw -= share
    return None


def status_body(code: int, reason: str, message: str) -> dict[str, object]:
    """A metav1.Status, as the API server answers an error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
