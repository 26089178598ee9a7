"""Two replicas of the operator under kopf peering (the chart's HA mode): the active one is
SIGKILLed, the standby takes over within the peering lifetime and carries on from what the
cluster says: a failure is acted on once, nothing is created twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import OperatorProcess
from tests.integration.test_operator import job_status, make_job, wait_for_phase, worker_pods
from tests.integration.test_recovery import fail_worker
from tests.kube import Kube, live_worker, slot_of, wait_for_worker, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERING = "rl-failover-test"
LIFETIME = 10  # seconds: the standby takes over about this long after the active one died


def make_peering(kube: Kube) -> None:
    """The chart's peering CRDs, and the replicas' peering object."""
    kube.run("apply", "--server-side", "-f", str(REPO_ROOT / "charts/ringleader/crds"))
    kube.run("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    kube.apply({**peering, "metadata": {"name": PEERING}}, "default")


def peering_args(priority: int) -> tuple[str, ...]:
    return (f"--peering={PEERING}", f"--priority={priority}", f"--peering-lifetime={LIFETIME}")


@pytest.fixture
def replicas(
    kube: Kube, operator: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """An active replica (priority 200) and a standby (100); the session's operator is paused."""
    make_peering(kube)
    operator.stop()
    pair = tuple(OperatorProcess(kube.kubeconfig, tmp_path / f"{n}.log") for n in ("a", "b"))
    active, standby = pair
    active.start(args=peering_args(200))
    # The standby starts once the active one is active: started together, the standby may find
    # no peer yet and act on a job before the other announces itself.
    wait_until(lambda: "Resuming operations" in active.log_path.read_text(), timeout=60)
    standby.start(args=peering_args(100))
    try:
        yield pair[0], pair[1]
    finally:
        for process in pair:
            process.stop()
        operator.start()


def test_the_standby_takes_over_and_acts_on_a_failure_once(
    kube: Kube, replicas: tuple[OperatorProcess, OperatorProcess], namespace: str
) -> None:
    active, standby = replicas
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running", timeout=90)
    assert "train" in active.log_path.read_text() and "train" not in standby.log_path.read_text()
    failing = wait_for_worker(kube, namespace, "train", 1)["metadata"]
    active.kill()
    died = time.monotonic()
    fail_worker(kube, namespace, failing["name"], 137, "OOMKilled")

    def replaced() -> bool:
        new = live_worker(kube, namespace, "train", 1, other_than=failing["uid"])
        return new is not None and job_status(kube, namespace).get("phase") == "Running"

    wait_until(replaced, timeout=LIFETIME * 6, what="the standby replacing the failed worker")
    took = time.monotonic() - died
    status = job_status(kube, namespace)
    assert (status["restarts"], status["restartsByClass"]) == (1, {"OutOfMemory": 1})
    assert [slot_of(p) for p in worker_pods(kube, namespace)] == [
        "train-worker-0-a0",
        "train-worker-1-a0",
    ]
    assert "OutOfMemory" in standby.log_path.read_text()
    assert took < LIFETIME * 4, took


def test_a_pod_deleted_while_no_replica_was_active_is_replaced_by_the_standby(
    kube: Kube, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    # The standby saw the job's pods before it paused; one of them goes while the active one is
    # dead and the standby not yet resumed. Resuming, its watches list the pods again, which
    # says nothing of the one that went: only a relist that replaces what it held shows it gone.
    make_peering(kube)
    operator.stop()
    standby, active = (OperatorProcess(kube.kubeconfig, tmp_path / f"{n}.log") for n in "ba")
    try:
        standby.start(args=peering_args(100))
        kube.apply(make_job(), namespace)
        wait_for_phase(kube, namespace, "Running", timeout=90)
        active.start(args=peering_args(200))
        wait_until(lambda: "Pausing operations" in standby.log_path.read_text(), timeout=60)
        deleted = wait_for_worker(kube, namespace, "train", 1)["metadata"]
        active.kill()
        kube.run("delete", "pod", deleted["name"], "-n", namespace, "--wait=true")

        def replaced() -> bool:
            new = live_worker(kube, namespace, "train", 1, other_than=deleted["uid"])
            return new is not None

        wait_until(replaced, timeout=LIFETIME * 6, what="the standby replacing the deleted worker")
        assert "Resuming operations" in standby.log_path.read_text()
    finally:
        for process in (standby, active):
            process.stop()
        operator.start()
