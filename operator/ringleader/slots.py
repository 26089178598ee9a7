"""Worker slots (pure): a worker is its restart attempt and replica index, as its labels say,
whatever its pod is named.

Each incarnation of a worker has a name of its own (naming.worker_pod_name), so what to create
is decided per slot, not per name: a slot is filled while any pod of it exists. Deterministic
names made a repeated create a harmless 409; with names of their own, a create that succeeded
but whose answer was lost is made again under another name, and the slot holds two pods:
`surplus_pods` names the ones to delete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ringleader import pods

Obj = Mapping[str, Any]
Pod = TypeVar("Pod", bound=Obj)
NEVER = datetime.max.replace(tzinfo=UTC)  # a pod without a creationTimestamp sorts as the newest


def held_indexes(workers: Iterable[Obj], attempt: int) -> set[int]:
    """The replica indexes of this attempt that some pod holds, whatever its state."""
    return {pods.index_of(p) for p in workers if pods.in_attempt(p, attempt)}


def empty_indexes(workers: Iterable[Obj], attempt: int, replicas: int) -> list[int]:
    """Indexes 0..replicas-1 of this attempt that no pod holds: the workers to create.

    A pod leaving or finished holds its slot until it is gone: its replacement comes after it,
    so the trainers never see two incarnations of one rank at once."""
    held = held_indexes(workers, attempt)
    return [index for index in range(replicas) if index not in held]


def surplus_pods(workers: Iterable[Obj], attempt: int) -> list[str]:
    """Where a slot of this attempt holds more than one pod not leaving: all but the oldest
    (by creationTimestamp, then name), to delete."""
    by_index: dict[int, list[Obj]] = defaultdict(list)
    for pod in workers:
        if pods.in_attempt(pod, attempt) and not pods.is_leaving(pod):
            by_index[pods.index_of(pod)].append(pod)
    surplus = []
    for held in by_index.values():
        oldest_first = sorted(held, key=lambda p: (pods.created_at(p) or NEVER, pods.name_of(p)))
        surplus += [pods.name_of(p) for p in oldest_first[1:]]
    return sorted(surplus)


def without_surplus(workers: Sequence[Pod], attempt: int) -> list[Pod]:
    """The workers but the surplus pods of this attempt."""
    surplus = set(surplus_pods(workers, attempt))
    return [p for p in workers if pods.name_of(p) not in surplus]
