"""Worker pods in the operator's unit tests, known by their slot.

A worker pod's name ends in a random token (naming.worker_pod_name), so tests refer to a worker
by its slot, written as the name was before the token: `digits-worker-1-a0` is replica 1 of
restart attempt 0 of job digits, read from the pod's labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ringleader import naming, pods

Obj = Mapping[str, Any]
TOKEN = f"[{naming.TOKEN_ALPHABET}]{{{naming.TOKEN_LENGTH}}}"


def slot_of(pod: Obj) -> str:
    """The worker's slot from its labels, checking that its name is the slot and a token."""
    job = pods.labels(pod)["ringleader.dev/job-name"]
    slot = f"{job}-worker-{pods.index_of(pod)}-a{pods.attempt_of(pod)}"
    name = pods.name_of(pod)
    assert re.fullmatch(f"{re.escape(slot)}-{TOKEN}", name), f"{name} is not a name of {slot}"
    return slot


def known_as(obj: Obj) -> str:
    """A worker's slot; any other child's name."""
    return slot_of(obj) if pods.is_worker(obj) else pods.name_of(obj)


def is_called(obj: Obj, which: str) -> bool:
    """Whether `which` is the child's name or, for a worker, its slot."""
    return pods.name_of(obj) == which or (pods.is_worker(obj) and slot_of(obj) == which)


def name_in(children: Iterable[Obj], which: str) -> str:
    """The actual name of the child called `which` (a worker's slot, or a name)."""
    (name,) = [pods.name_of(c) for c in children if is_called(c, which)]
    return name


def known_names(names: Iterable[str], children: Iterable[Obj]) -> list[str]:
    """Pod names (a plan's deletions, say) as the tests write them: workers by slot, sorted."""
    by_name = {pods.name_of(c): c for c in children}
    return sorted(known_as(by_name[n]) if n in by_name else n for n in names)
