"""The operator on a real control plane with kwok nodes: children, phases, scale, suspend, time."""

from __future__ import annotations

from typing import Any

import pytest

from ringleader import builders
from ringleader.kube import FAULT_EXIT_CODE
from ringleader.models import parse_job
from tests.harness import OperatorProcess
from tests.kube import (
    Kube,
    KubectlError,
    find_workers,
    is_live,
    known_as,
    slot_of,
    wait_until,
    worker_name,
)

COMPLETE = "pod-complete.stage.ringleader.dev"
FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"


def make_job(name: str = "train", replicas: int = 2, gpus: int = 2, **spec: Any) -> dict[str, Any]:
    """A job whose workers kwok pretends to run."""
    container: dict[str, Any] = {
        "name": "trainer",
        "image": "ringleader-trainer:0.1.0",
        "command": ["python", "-m", "ringleader_trainer.launch"],
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    template = {"spec": {"containers": [container]}}
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "template": template, **spec},
    }


def job_status(kube: Kube, namespace: str, name: str = "train") -> dict[str, Any]:
    job: dict[str, Any] = kube.get("dtj", name, namespace=namespace)
    return dict(job.get("status") or {})


def wait_for_phase(
    kube: Kube, namespace: str, phase: str, name: str = "train", timeout: float = 60
) -> dict[str, Any]:
    """The job's status once its phase is `phase`."""

    def status_in_phase() -> dict[str, Any] | None:
        status = job_status(kube, namespace, name)
        return status if status.get("phase") == phase else None

    return wait_until(status_in_phase, timeout=timeout, what=f"{name} phase {phase}")


def worker_pods(kube: Kube, namespace: str, name: str = "train") -> list[dict[str, Any]]:
    """The job's worker pods, by attempt and index, oldest first."""
    return find_workers(kube, namespace, name)


def live_worker_slots(kube: Kube, namespace: str, name: str = "train") -> list[str]:
    """The slots (<job>-worker-<index>-a<attempt>) of the job's pods not being deleted."""
    return [slot_of(p) for p in worker_pods(kube, namespace, name) if is_live(p)]


def test_an_applied_job_gets_exactly_its_children_with_the_contract_env(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    job = kube.get("dtj", "train", namespace=namespace)
    workers = builders.build_worker_pods(parse_job(job), attempt=0)
    expected = {slot_of(p): p for p in workers}
    pods = worker_pods(kube, namespace)
    assert [slot_of(p) for p in pods] == sorted(expected)
    for pod in pods:
        want = expected[slot_of(pod)]["spec"]["containers"][0]["env"]
        assert pod["spec"]["containers"][0]["env"] == want
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "DistributedTrainingJob",
            job["metadata"]["uid"],
            True,
        )
    services = kube.get("services", namespace=namespace)["items"]
    # One headless Service: each worker's and the rendezvous's subdomain.
    assert [s["metadata"]["name"] for s in services] == ["train-workers"]
    store = kube.get("pods", namespace=namespace, selector="ringleader.dev/role=rendezvous")
    assert [p["metadata"]["name"] for p in store["items"]] == ["train-rdzv"]
    assert store["items"][0]["spec"]["subdomain"] == "train-workers"


def test_running_workers_make_the_job_running_with_honest_counts(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(replicas=3), namespace)
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["replicas"], status["readyReplicas"], status["workers"]) == (3, 3, "3/3")
    assert status["worldSize"] == 6  # 3 pods x 2 GPUs, one process per GPU
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Running"]["status"] == "True"
    assert conditions["Running"]["reason"] == "AllWorkersRunning"
    events = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "AllWorkersRunning" in events.split()


def test_kubectl_get_shows_phase_workers_and_restarts_columns(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    header, row = kube.run("get", "dtj", "-n", namespace).splitlines()
    for column in ("PHASE", "WORKERS", "STEP", "RESTARTS", "LAST-CKPT", "AGE"):
        assert column in header.split()
    assert row.split()[:3] == ["train", "Running", "2/2"]


def test_workers_that_all_exit_zero_make_the_job_succeed_with_a_completion_time(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    job = make_job()
    job["spec"]["template"]["metadata"] = {
        "labels": {COMPLETE: "true"},
        "annotations": {f"{COMPLETE}/delay": "2000"},
    }
    kube.apply(job, namespace)
    status = wait_for_phase(kube, namespace, "Succeeded")
    assert status["completionTime"] >= status["startTime"]
    assert {p["status"]["phase"] for p in worker_pods(kube, namespace)} == {"Succeeded"}
    wait_until(
        lambda: "pod/train-rdzv" not in kube.run("get", "pods", "-n", namespace, "-o", "name"),
        what="the rendezvous store removed once the job finished",
    )


def test_kubectl_scale_resizes_an_elastic_job_in_place(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(replicas=2, elastic={"minReplicas": 1, "maxReplicas": 4}), namespace)
    wait_for_phase(kube, namespace, "Running")
    kube.run("scale", "dtj/train", "-n", namespace, "--replicas=4")
    wait_until(lambda: job_status(kube, namespace).get("workers") == "4/4", what="4/4 workers")
    kube.run("scale", "dtj/train", "-n", namespace, "--replicas=1")
    wait_until(lambda: len(live_worker_slots(kube, namespace)) == 1, what="one worker left")
    assert live_worker_slots(kube, namespace) == ["train-worker-0-a0"]  # the highest went
    assert job_status(kube, namespace)["restartAttempt"] == 0
    with pytest.raises(KubectlError, match=r"spec\.replicas must be between"):
        kube.run("scale", "dtj/train", "-n", namespace, "--replicas=5")


def test_kubectl_scale_restarts_a_fixed_size_job_at_its_new_size(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(replicas=2), namespace)
    wait_for_phase(kube, namespace, "Running")
    kube.run("scale", "dtj/train", "-n", namespace, "--replicas=3")
    wait_until(
        lambda: (
            live_worker_slots(kube, namespace)
            == ["train-worker-0-a1", "train-worker-1-a1", "train-worker-2-a1"]
        ),
        what="the gang restarted with 3 workers",
    )
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restartAttempt"], status.get("restarts", 0), status["workers"]) == (1, 0, "3/3")
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "RestartingAtNewSize" in reasons.split()


def test_suspending_removes_the_pods_and_resuming_brings_them_back(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")
    suspend = '{"spec": {"runPolicy": {"suspend": true}}}'
    kube.run("patch", "dtj/train", "-n", namespace, "--type=merge", "-p", suspend)
    status = wait_for_phase(kube, namespace, "Suspended")
    wait_until(lambda: not kube.get("pods", namespace=namespace)["items"], what="no pods")
    assert "startTime" not in status or status["startTime"] is None
    resume = '{"spec": {"runPolicy": {"suspend": false}}}'
    kube.run("patch", "dtj/train", "-n", namespace, "--type=merge", "-p", resume)
    wait_for_phase(kube, namespace, "Running")
    assert len(live_worker_slots(kube, namespace)) == 2


def test_a_job_past_its_active_deadline_fails_with_the_reason(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(runPolicy={"activeDeadlineSeconds": 3}), namespace)
    wait_for_phase(kube, namespace, "Running")
    status = wait_for_phase(kube, namespace, "Failed", timeout=30)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "DeadlineExceeded")
    wait_until(lambda: not live_worker_slots(kube, namespace), what="workers removed")


def test_workers_no_node_can_take_are_explained_and_fail_the_job_after_its_startup_timeout(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    job = make_job(gpus=16, scheduling={"startupTimeoutSeconds": 4})  # kwok nodes have 8 each
    kube.apply(job, namespace)
    wait_for_phase(kube, namespace, "Starting")
    wait_until(
        lambda: "Insufficient nvidia.com/gpu" in str(job_status(kube, namespace)["conditions"]),
        what="the scheduler's reason in the job's status",
    )
    status = wait_for_phase(kube, namespace, "Failed", timeout=30)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "StartupTimeout"), failed
    assert "was not running" in failed["message"] and "Unschedulable" in failed["message"]
    wait_until(lambda: not live_worker_slots(kube, namespace), what="workers removed")


def test_a_failed_worker_under_a_gang_rule_restarts_the_gang_under_a_new_attempt(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(failurePolicy={"rules": [{"action": "RestartGang"}]}), namespace)
    wait_for_phase(kube, namespace, "Running")
    failing = worker_name(kube, namespace, "train", 1)
    kube.run("annotate", "pod", failing, "-n", namespace, f"{FAIL}/exit-code=2")
    kube.run("label", "pod", failing, "-n", namespace, f"{FAIL}=true")
    wait_until(
        lambda: live_worker_slots(kube, namespace) == ["train-worker-0-a1", "train-worker-1-a1"],
        what="the gang recreated as attempt 1",
    )
    status = wait_for_phase(kube, namespace, "Running")
    assert (status["restartAttempt"], status["restarts"]) == (1, 1)


def test_a_job_out_of_restarts_fails_and_says_why(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(make_job(failurePolicy={"maxRestarts": 0}), namespace)
    wait_for_phase(kube, namespace, "Running")
    failing = worker_name(kube, namespace, "train", 0)
    kube.run("label", "pod", failing, "-n", namespace, f"{FAIL}=true")
    status = wait_for_phase(kube, namespace, "Failed")
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "MaxRestartsExceeded"
    assert failing in failed["message"]
    decided = f"{namespace}/train MaxRestartsExceeded: "
    log = operator.log_path.read_text(errors="replace")
    assert decided in log, operator.log_tail()  # the operator's log says what it decided
    assert "Handler 'job_event' succeeded" not in log  # and is not buried in kopf's chatter


def test_a_finished_job_is_deleted_after_its_ttl_with_everything_it_made(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    job = make_job(runPolicy={"ttlSecondsAfterFinished": 2})
    job["spec"]["template"]["metadata"] = {"labels": {COMPLETE: "true"}}
    kube.apply(job, namespace)
    wait_until(
        lambda: not kube.run("get", "dtj", "-n", namespace, "-o", "name").strip(),
        timeout=60,
        what="the job deleted after its TTL",
    )
    wait_until(
        lambda: not kube.get("pods,services", namespace=namespace)["items"],
        what="its pods and services garbage-collected",
    )


def test_the_operator_killed_after_any_of_its_writes_converges_with_no_duplicates(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Job k meets an operator that dies right after its k-th write; the jobs before it are
    # settled, so they must cost that operator no write at all. A last, undisturbed operator
    # must then bring every job to Running with exactly its children.
    operator.stop()
    jobs = [f"crash-{k}" for k in range(1, 9)]  # a job of 2 workers takes 9 writes to Running
    try:
        for writes, name in enumerate(jobs, start=1):
            kube.apply(make_job(name, replicas=2, gpus=0), namespace)
            operator.start(exit_after_writes=writes)
            assert operator.wait_exit(timeout=30) == FAULT_EXIT_CODE, operator.log_tail()
    finally:
        operator.start()
    for name in jobs:
        status = wait_for_phase(kube, namespace, "Running", name=name)
        assert (status["restartAttempt"], status["restarts"], status["workers"]) == (0, 0, "2/2")
    pods = kube.get("pods", namespace=namespace)["items"]
    known = [known_as(p) for p in pods]
    expected = [f"{n}-{suffix}" for n in jobs for suffix in ("rdzv", "worker-0-a0", "worker-1-a0")]
    assert sorted(known) == sorted(expected)  # one pod per slot: none made twice


def test_a_job_whose_workers_report_nothing_says_so_and_is_not_hung(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # kwok's workers run nothing: no progress endpoint ever answers, as with a user's script
    # that does not use the client library.
    kube.apply(make_job(), namespace)
    wait_for_phase(kube, namespace, "Running")

    def said() -> dict[str, Any] | None:
        status = job_status(kube, namespace)
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return conditions.get("ProgressReported")

    condition = wait_until(said, timeout=150, what="status saying progress is not reported")
    assert (condition["status"], condition["reason"]) == ("False", "NotReported")
    assert "client library" in condition["message"]
    status = job_status(kube, namespace)
    assert status["phase"] == "Running" and not status.get("hang") and "progress" not in status
