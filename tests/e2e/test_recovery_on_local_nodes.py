"""Failures injected into real training on real nodes: each job finishes, and its final
weights are bitwise equal to those of a clean run of the same job (fixed world size)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ringleader_client.progressfiles import heartbeat_path, read_json
from ringleader_trainer.report import FINAL_MODEL
from tests.e2e.conftest import create_restricted_namespace
from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    pod_log,
    status_when,
    wait_finished,
)
from tests.harness import InstalledOperator
from tests.kube import Kube, wait_for_worker, wait_until, worker_name

# Long enough to inject a failure after the first checkpoint (step 20) and recover before the
# end (5 epochs of digits are 115 steps); paced so the injection lands mid-run.
ARGS = [*DIGITS_ARGS, "--epochs", "5", "--min-step-seconds", "0.1"]
Weights = dict[str, torch.Tensor]


def recovery_job(name: str, image: str) -> dict[str, Any]:
    job = digits_job(name, image)
    job["spec"]["template"]["spec"]["containers"][0]["args"] = ARGS
    return job


def volume_of(kube: Kube, namespace: str, job: str) -> Path:
    """The job's checkpoint volume as the host sees it (a local provisioner hostPath)."""
    claim = kube.get("pvc", f"{job}-checkpoint", namespace=namespace)
    volume = kube.get("pv", claim["spec"]["volumeName"])
    return Path(volume["spec"]["hostPath"]["path"])


def train(
    kube: Kube, namespace: str, job: dict[str, Any], inject: Callable[[], None] | None
) -> Weights:
    """Apply the job, inject the failure once a checkpoint exists, and return final weights."""
    name = job["metadata"]["name"]
    kube.apply(job, namespace)
    if inject is not None:
        status_when(
            kube,
            namespace,
            name,
            lambda s: (s.get("checkpoint") or {}).get("step", 0) >= 20,
            timeout=180,
            what=f"{name}'s first checkpoint",
        )
        inject()
    status = wait_finished(kube, namespace, name, timeout=360)
    assert status["phase"] == "Succeeded", status
    weights: Weights = torch.load(volume_of(kube, namespace, name) / FINAL_MODEL)
    return weights


def assert_bitwise_equal(got: Weights, want: Weights) -> None:
    assert sorted(got) == sorted(want)
    for key, tensor in want.items():
        assert torch.equal(got[key], tensor), f"{key} differs from the clean run"


@pytest.fixture(scope="module")
def clean_weights(kube: Kube, operator: InstalledOperator, trainer_image: str) -> Weights:
    """The final weights of the job trained without a failure."""
    namespace = "clean-run"
    create_restricted_namespace(kube, namespace)
    try:
        return train(kube, namespace, recovery_job("clean", trainer_image), None)
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def pod_uid(kube: Kube, namespace: str, pod: str) -> str:
    return str(kube.get("pod", pod, namespace=namespace)["metadata"]["uid"])


def replaced(kube: Kube, namespace: str, pod: str, uid: str) -> bool:
    """Another pod of this name than the one of that uid (the rendezvous pod's name is fixed)."""
    pods = kube.get("pods", namespace=namespace)["items"]
    return any(p["metadata"]["name"] == pod and p["metadata"]["uid"] != uid for p in pods)


def test_kill_9_of_a_training_process_is_restarted_in_place(
    kube: Kube, clean_weights: Weights, trainer_image: str, namespace: str
) -> None:
    killed: list[int] = []
    pod: list[str] = []  # worker 1's pod: the process restarts in it, the pod stays

    def kill_worker() -> None:
        pod.append(worker_name(kube, namespace, "killed", 1))
        volume = volume_of(kube, namespace, "killed")
        beat = read_json(heartbeat_path(volume, pod[0])) or {}
        # The pid in the pod's own PID namespace: killed from inside, as a user would.
        kill = ["sh", "-c", f"kill -9 {int(beat['pid'])}"]
        kube.run("exec", "-n", namespace, pod[0], "-c", "trainer", "--", *kill)
        killed.append(int(beat["pid"]))

    weights = train(kube, namespace, recovery_job("killed", trainer_image), kill_worker)
    assert_bitwise_equal(weights, clean_weights)
    status = kube.get("dtj", "killed", namespace=namespace)["status"]
    assert status["restartAttempt"] == 0 and "lastFailure" not in status  # the agent did it
    beat = read_json(heartbeat_path(volume_of(kube, namespace, "killed"), pod[0]))
    assert beat is not None and beat["pid"] != killed[0]  # a new process finished the job


@pytest.mark.parametrize("index", [1, 0], ids=["worker", "rank-0-worker"])
def test_a_deleted_worker_pod_is_recreated_and_the_group_re_forms(
    kube: Kube, clean_weights: Weights, trainer_image: str, namespace: str, index: int
) -> None:
    pod: list[str] = []

    def delete_pod() -> None:
        deleted = wait_for_worker(kube, namespace, "deleted", index)["metadata"]
        pod.append(deleted["name"])
        kube.run("delete", "pod", deleted["name"], "-n", namespace, "--wait=false")
        # Its replacement: a pod of its slot, under a name of its own.
        wait_for_worker(kube, namespace, "deleted", index, other_than=deleted["uid"])

    weights = train(kube, namespace, recovery_job("deleted", trainer_image), delete_pod)
    assert_bitwise_equal(weights, clean_weights)
    status = kube.get("dtj", "deleted", namespace=namespace)["status"]
    assert status["restartAttempt"] == 0  # the survivor stayed; nothing failed
    # Not a failure, so no WorkerFailed event: the phase change names the pod instead.
    messages = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].message}")
    assert f"{pod[0]} is being deleted" in messages, messages


def test_a_deleted_rendezvous_pod_is_recreated_and_training_finishes(
    kube: Kube, clean_weights: Weights, trainer_image: str, namespace: str
) -> None:
    uids: list[str] = []

    def delete_store() -> None:
        uids.append(pod_uid(kube, namespace, "store-rdzv"))
        kube.run("delete", "pod", "store-rdzv", "-n", namespace, "--wait=false")
        wait_until(
            lambda: replaced(kube, namespace, "store-rdzv", uids[0]), what="store-rdzv recreated"
        )

    weights = train(kube, namespace, recovery_job("store", trainer_image), delete_store)
    assert_bitwise_equal(weights, clean_weights)
    # The agents lose their rendezvous; each pod says so and is replaced in place.
    status = kube.get("dtj", "store", namespace=namespace)["status"]
    assert status["lastFailure"]["class"] == "Communication", status["lastFailure"]
    assert status["lastFailure"]["message"].startswith("lost the rendezvous store at store-rdzv")


def test_a_hung_worker_is_noticed_and_the_gang_restarts_from_its_checkpoint(
    kube: Kube, clean_weights: Weights, trainer_image: str, namespace: str
) -> None:
    job = recovery_job("hung", trainer_image)
    job["spec"]["template"]["spec"]["containers"][0]["args"] = [
        *ARGS, "--debug-stall-at-step", "30"
    ]  # fmt: skip
    job["spec"]["failurePolicy"] = {"hangDetection": {"minSeconds": 5, "stepTimeMultiple": 5}}
    kube.apply(job, namespace)
    status = wait_finished(kube, namespace, "hung", timeout=360)
    assert status["phase"] == "Succeeded", status
    assert status["lastFailure"]["class"] == "Hang"
    assert (status["restartAttempt"], status["restartsByClass"]) == (1, {"Hang": 1})
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "HangDetected" in reasons.split()
    log = pod_log(kube, namespace, worker_name(kube, namespace, "hung", 0, attempt=1))
    assert "ringleader: resumed from" in log  # the new gang started from a checkpoint
    weights: Weights = torch.load(volume_of(kube, namespace, "hung") / FINAL_MODEL)
    assert_bitwise_equal(weights, clean_weights)
