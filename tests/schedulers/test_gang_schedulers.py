"""spec.scheduling.gang with the real gang schedulers: Volcano, and scheduler-plugins' coscheduling.

Two gang jobs that together need more GPUs than their pool has (3 workers x 8 GPUs each, on
four 8-GPU nodes): the first runs whole; the second waits with no pod bound, never a part of
its gang holding GPUs; once the first finishes, the second runs whole. The schedulers run as
host processes beside kube-scheduler (tools/localcluster/schedulers.py), and bind only pods
that name them.
"""

from __future__ import annotations

import time
from typing import Any

from tests.harness import OperatorProcess
from tests.integration.test_node_loss import pool_job
from tests.integration.test_operator import COMPLETE, job_status, wait_for_phase, worker_pods
from tests.kube import Kube, wait_until
from tools.localcluster.schedulers import COSCHEDULING_SCHEDULER_NAME, VOLCANO_SCHEDULER_NAME

GANG_SIZE = 3  # 24 of the pool's 32 GPUs: two gangs cannot both fit
# Long enough for several of each scheduler's cycles (Volcano: 1 s; coscheduling: a pod's
# Permit wait of 10 s and the group's back-off) to bind part of the gang, were they to.
WAIT_SECONDS = 25


def gang_job(pool: str, name: str, scheduler_name: str) -> dict[str, Any]:
    """A gang of GANG_SIZE 8-GPU workers on the pool's nodes, for the scheduler named."""
    scheduling = {"gang": True, "schedulerName": scheduler_name}
    return pool_job(pool, name=name, replicas=GANG_SIZE, scheduling=scheduling)


def bound_workers(kube: Kube, namespace: str, name: str) -> list[str]:
    """The job's worker pods that a scheduler has bound to a node."""
    return [
        p["metadata"]["name"]
        for p in worker_pods(kube, namespace, name)
        if p["spec"].get("nodeName")
    ]


def finish(kube: Kube, namespace: str, name: str) -> None:
    """Let kwok complete every worker of the job with exit code 0."""
    for pod in worker_pods(kube, namespace, name):
        kube.run("label", "pod", pod["metadata"]["name"], "-n", namespace, f"{COMPLETE}=true")


def assert_second_gang_waits_unbound(kube: Kube, namespace: str) -> dict[str, Any]:
    """Watch the second gang for WAIT_SECONDS: no pod of it bound, the first still whole."""
    wait_until(
        lambda: len(worker_pods(kube, namespace, "second")) == GANG_SIZE,
        what="the second gang's pods created",
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert bound_workers(kube, namespace, "second") == []
        assert len(bound_workers(kube, namespace, "first")) == GANG_SIZE
        time.sleep(0.5)
    return job_status(kube, namespace, "second")


def status_saying(kube: Kube, namespace: str, text: str) -> dict[str, Any] | None:
    """The job's status once its phase's message contains `text`, else None."""
    status = job_status(kube, namespace)
    conditions = status.get("conditions") or []
    return status if conditions and text in conditions[0]["message"] else None


def run_two_gangs(kube: Kube, namespace: str, pool: str, scheduler_name: str) -> dict[str, Any]:
    """The scenario of this module; returns the second job's status while it waited."""
    kube.apply(gang_job(pool, "first", scheduler_name), namespace)
    wait_for_phase(kube, namespace, "Running", name="first")
    assert len(bound_workers(kube, namespace, "first")) == GANG_SIZE
    kube.apply(gang_job(pool, "second", scheduler_name), namespace)
    waiting = assert_second_gang_waits_unbound(kube, namespace)
    finish(kube, namespace, "first")
    wait_for_phase(kube, namespace, "Succeeded", name="first")
    # Coscheduling retries a rejected gang only after COSCHEDULING_RETRY, which kube-scheduler
    # checks every 30 s: up to a minute after the GPUs are free.
    wait_for_phase(kube, namespace, "Running", name="second", timeout=150)
    assert len(bound_workers(kube, namespace, "second")) == GANG_SIZE
    return waiting


def test_volcano_binds_a_gang_whole_and_keeps_the_next_one_unbound_until_it_fits(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str, volcano: str
) -> None:
    waiting = run_two_gangs(kube, namespace, pool, VOLCANO_SCHEDULER_NAME)
    assert waiting["phase"] == "Starting"
    # Said from the PodGroup's status, as Volcano wrote it.
    message = waiting["conditions"][0]["message"]
    assert message.startswith("0/3 ready; the gang is in Volcano queue default but not placed: ")
    assert "3 minAvailable" in message


def test_a_gang_its_volcano_queue_cannot_hold_waits_unbound_and_the_job_says_so(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str, volcano: str
) -> None:
    queue = {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "Queue",
        "metadata": {"name": namespace},
        "spec": {"weight": 1, "reclaimable": False, "capability": {"nvidia.com/gpu": "16"}},
    }
    kube.apply(queue, namespace)
    try:
        job = gang_job(pool, "train", VOLCANO_SCHEDULER_NAME)
        job["spec"]["scheduling"]["queueName"] = namespace
        kube.apply(job, namespace)
        expected = f"the gang is not yet admitted to Volcano queue {namespace}: "
        status = wait_until(
            lambda: status_saying(kube, namespace, expected),
            what="the job's message saying its queue has not admitted the gang",
        )
        assert status["phase"] == "Starting"
        assert bound_workers(kube, namespace, "train") == []
    finally:
        kube.run("delete", "queue.scheduling.volcano.sh", namespace, "--wait=false", check=False)


def test_coscheduling_binds_a_gang_whole_and_keeps_the_next_one_unbound_until_it_fits(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str, coscheduling: str
) -> None:
    waiting = run_two_gangs(kube, namespace, pool, COSCHEDULING_SCHEDULER_NAME)
    assert waiting["phase"] in ("Pending", "Starting")


def test_without_a_gang_scheduler_kube_scheduler_binds_part_of_the_second_gang(
    kube: Kube, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    # The scenario's control: what the tests above rule out does happen without a gang scheduler.
    kube.apply(pool_job(pool, name="first", replicas=GANG_SIZE), namespace)
    wait_for_phase(kube, namespace, "Running", name="first")
    kube.apply(pool_job(pool, name="second", replicas=GANG_SIZE), namespace)
    wait_until(
        lambda: len(bound_workers(kube, namespace, "second")) == 1,
        what="one worker of the second job bound to the pool's last free node, holding its GPUs",
    )
