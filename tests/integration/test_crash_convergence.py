"""The operator SIGKILLed right after its N-th write in the middle of a resize, a suspension, a
resume or a deletion: a fresh operator converges, with no duplicate child, no restart counted
twice or lost, nothing left behind. (Creation and recovery: test_operator.py, test_recovery.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

import pytest

from tests.harness import OperatorProcess
from tests.integration.test_operator import make_job, wait_for_phase
from tests.kube import Kube, is_live, known_as, wait_until

WRITES = (1, 2, 3, 5)  # die after the status, the event, a deletion, later: every step of it


def crash_after(operator: OperatorProcess, writes: int, change: Callable[[], object]) -> None:
    """Make the change with no operator running, let one die after `writes` writes (or kill it
    where the change takes fewer), then leave a fresh, undisturbed one running."""
    operator.stop()
    try:
        change()
        operator.start(exit_after_writes=writes)
        if operator.wait_exit(timeout=15) is None:
            operator.kill()
            operator.wait_exit(timeout=15)
    finally:
        operator.start()


def pods(kube: Kube, namespace: str) -> list[str]:
    """Every pod of the namespace not on its way out, by name (a worker: by slot)."""
    found = kube.get("pods", namespace=namespace)["items"]
    return sorted(known_as(p) for p in found if is_live(p))


def settled_pods(kube: Kube, namespace: str, expected: list[str]) -> None:
    """Wait until the namespace's pods are exactly `expected`, workers by slot (no duplicate,
    none missing)."""
    wait_until(lambda: pods(kube, namespace) == sorted(expected), timeout=90, what=f"{expected}")


def patch_spec(kube: Kube, namespace: str, spec: Mapping[str, object]) -> None:
    kube.run(
        "patch", "dtj", "train", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


@pytest.mark.parametrize("writes", WRITES)
def test_a_fixed_size_job_scaled_restarts_its_gang_once(
    kube: Kube, operator: OperatorProcess, namespace: str, writes: int
) -> None:
    kube.apply(make_job(replicas=2, gpus=0), namespace)
    wait_for_phase(kube, namespace, "Running")
    crash_after(operator, writes, lambda: patch_spec(kube, namespace, {"replicas": 3}))
    settled_pods(kube, namespace, ["train-rdzv", *[f"train-worker-{i}-a1" for i in range(3)]])
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restartAttempt"], status.get("restarts", 0), status["workers"]) == (1, 0, "3/3")


@pytest.mark.parametrize("writes", WRITES)
def test_an_elastic_job_scaled_grows_in_place_once(
    kube: Kube, operator: OperatorProcess, namespace: str, writes: int
) -> None:
    elastic = {"minReplicas": 1, "maxReplicas": 4}
    kube.apply(make_job(replicas=2, gpus=0, elastic=elastic), namespace)
    wait_for_phase(kube, namespace, "Running")
    crash_after(operator, writes, lambda: patch_spec(kube, namespace, {"replicas": 3}))
    settled_pods(kube, namespace, ["train-rdzv", *[f"train-worker-{i}-a0" for i in range(3)]])
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restartAttempt"], status.get("restarts", 0)) == (0, 0)


@pytest.mark.parametrize("writes", WRITES)
def test_a_suspension_and_a_resume_each_happen_once(
    kube: Kube, operator: OperatorProcess, namespace: str, writes: int
) -> None:
    kube.apply(make_job(replicas=2, gpus=0), namespace)
    wait_for_phase(kube, namespace, "Running")
    suspend = {"runPolicy": {"suspend": True}}
    crash_after(operator, writes, lambda: patch_spec(kube, namespace, suspend))
    wait_for_phase(kube, namespace, "Suspended", timeout=90)
    settled_pods(kube, namespace, [])  # the rendezvous pod goes too; Services stay
    resume = {"runPolicy": {"suspend": False}}
    crash_after(operator, writes, lambda: patch_spec(kube, namespace, resume))
    settled_pods(kube, namespace, ["train-rdzv", "train-worker-0-a0", "train-worker-1-a0"])
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restartAttempt"], status.get("restarts", 0)) == (0, 0)


@pytest.mark.parametrize("writes", (1, 2))
def test_a_job_deleted_leaves_nothing_and_nothing_is_made_again(
    kube: Kube, operator: OperatorProcess, namespace: str, writes: int
) -> None:
    kube.apply(make_job(replicas=2, gpus=0), namespace)
    wait_for_phase(kube, namespace, "Running")
    crash_after(operator, writes, lambda: kube.run("delete", "dtj", "train", "-n", namespace))
    wait_until(
        lambda: not kube.get("pods,services", namespace=namespace)["items"],
        timeout=90,
        what="its children garbage-collected",
    )
    assert kube.run("get", "dtj", "-n", namespace, "-o", "name").strip() == ""
    time.sleep(5)  # an operator acting on what it saw before the deletion would make them now
    assert not kube.get("pods,services", namespace=namespace)["items"]
