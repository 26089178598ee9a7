"""A job whose worker is deleted again and again: an event that says the same again is one Event
object with a count (as `kubectl describe` shows "x4 over ..."), not an Event per flap."""

from __future__ import annotations

import functools
from typing import Any

from ringleader.eventseries import HEARTBEAT_SECONDS
from tests.harness import OperatorProcess
from tests.integration.test_operator import make_job, wait_for_phase, worker_pods
from tests.kube import Kube, wait_until

DELETIONS = 3


def _worker_1(kube: Kube, namespace: str) -> dict[str, Any] | None:
    """Worker 1 as it runs now (not being deleted), if it does."""
    for pod in worker_pods(kube, namespace):
        labels, meta = pod["metadata"]["labels"], pod["metadata"]
        running = (pod.get("status") or {}).get("phase") == "Running"
        index_1 = labels.get("ringleader.dev/replica-index") == "1"
        if index_1 and running and not meta.get("deletionTimestamp"):
            return pod
    return None


def _events_by_saying(kube: Kube, namespace: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The job's events (not the scheduler's about its pods) by reason and note."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in kube.get("events.events.k8s.io", namespace=namespace)["items"]:
        if (event.get("regarding") or {}).get("kind") == "DistributedTrainingJob":
            saying = (str(event.get("reason")), str(event.get("note")))
            found.setdefault(saying, []).append(event)
    return found


def _count(event: dict[str, Any]) -> int:
    return int((event.get("series") or {}).get("count") or 1)


def test_a_flapping_worker_counts_up_one_event_for_what_it_says_again(
    kube: Kube, crd: str, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    for _ in range(DELETIONS):
        pod = wait_until(lambda: _worker_1(kube, namespace), what="worker 1 running")
        kube.run("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=false")
        wait_until(functools.partial(_replaced, kube, namespace, pod), what="worker 1 replaced")
        wait_for_phase(kube, namespace, "Running")

    def counted() -> dict[tuple[str, str], list[dict[str, Any]]] | None:
        events = _events_by_saying(kube, namespace)
        running = [
            _count(event)
            for (reason, _note), same in events.items()
            for event in same
            if reason == "AllWorkersRunning"
        ]
        # Running, all ready: once at the start and once after each deletion, said the same.
        return events if running == [1 + DELETIONS] else None

    events = wait_until(counted, timeout=HEARTBEAT_SECONDS + 30, what="the series counted")
    assert all(len(same) == 1 for same in events.values()), events  # never twice the same


def _replaced(kube: Kube, namespace: str, old: dict[str, Any]) -> bool:
    new = _worker_1(kube, namespace)
    return new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]
