"""Users' own scripts through the operator on real nodes, in the plain torch image (nothing of
Ringleader in it): run by torchrun, or by plain python, from a ConfigMap. The client library
reaches a script that uses it as a zip in a second ConfigMap, on PYTHONPATH; its reports reach
the job's status."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import client_zip
from tests.e2e.test_training_through_the_operator import (
    job_status,
    pod_log,
    restricted_pod_spec,
    status_when,
    wait_finished,
)
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube, wait_for_worker, worker_name

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / "examples" / "scripts" / "train.py"
STALL = Path(__file__).parent / "scripts" / "stall_once.py"
HF = REPO_ROOT / "examples" / "scripts" / "hf_train.py"
CLIENT_DIR = "/opt/ringleader-client"
CLIENT_ZIP = "ringleader_client.zip"


def script_job(
    name: str, image: str, command: list[str], replicas: int = 2, client: bool = True,
    **spec: Any,
) -> dict[str, Any]:  # fmt: skip
    """A job that runs /scripts/<script> from the ConfigMap `scripts`, on the real nodes; with
    the client library on PYTHONPATH unless client is False."""
    env = [
        {"name": "TRAIN_STEPS", "value": "150"},
        {"name": "CHECKPOINT_EVERY", "value": "10"},
        {"name": "STEP_SECONDS", "value": "0.1"},
    ]
    mounts = [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}]
    volumes = [{"name": "scripts", "configMap": {"name": "scripts"}}]
    if client:
        env.append({"name": "PYTHONPATH", "value": f"{CLIENT_DIR}/{CLIENT_ZIP}"})
        mounts.append({"name": "client", "mountPath": CLIENT_DIR, "readOnly": True})
        volumes.append({"name": "client", "configMap": {"name": "ringleader-client"}})
    trainer = {
        "name": "trainer",
        "image": image,
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "500m"}},
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "checkpoint": {"size": "1Gi"},
            "template": {"spec": restricted_pod_spec(trainer, *volumes)},
            **spec,
        },
    }


def add_scripts(kube: Kube, namespace: str, *scripts: Path) -> None:
    """The scripts' ConfigMap, and the client library's zip in a ConfigMap of its own."""
    files = [f"--from-file={script}" for script in scripts or (TRAIN, STALL)]
    kube.run("create", "configmap", "scripts", *files, "-n", namespace)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ringleader-client"},
            "binaryData": {CLIENT_ZIP: base64.b64encode(client_zip()).decode()},
        },
        namespace,
    )


def step_of(status: dict[str, Any]) -> int:
    return int((status.get("progress") or {}).get("step") or 0)


def resumed_from(kube: Kube, namespace: str, pod: str) -> list[int]:
    """The steps the pod's trainer said it trained from (its log: `kubectl logs`)."""
    return [int(s) for s in re.findall(r"training from step (\d+)", pod_log(kube, namespace, pod))]


def test_a_torchrun_script_that_imports_nothing_of_ringleader_runs_in_the_plain_torch_image(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    add_scripts(kube, namespace)
    job = script_job("bare", user_image, ["torchrun", "/scripts/train.py"], client=False)
    job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "40"
    kube.apply(job, namespace)
    final = wait_finished(kube, namespace, "bare", timeout=300)
    assert final["phase"] == "Succeeded", final
    assert "progress" not in final  # nothing reported it: no step is made up
    # The rendezvous pod ran a TCPStore server in the same image, torch and nothing else.
    store = kube.get("pod", "bare-rdzv", namespace=namespace)
    assert store["spec"]["containers"][0]["image"] == user_image
    assert store["status"]["containerStatuses"][0]["ready"] is True
    for index in range(2):
        assert resumed_from(kube, namespace, worker_name(kube, namespace, "bare", index)) == [0]


def worker_1_deleted_mid_run(
    kube: Kube,
    namespace: str,
    job: dict[str, Any],
    ready: Callable[[dict[str, Any]], Any],
    *,
    what: str,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run the script job; once `ready(status)`, delete its worker 1. Returns the status then,
    the final one, which says Succeeded with every step trained and checkpointed, and the uid
    of the pod deleted."""
    name = job["metadata"]["name"]
    add_scripts(kube, namespace)
    kube.apply(job, namespace)
    running = status_when(kube, namespace, name, ready, timeout=240, what=what)
    deleted = wait_for_worker(kube, namespace, name, 1)["metadata"]
    kube.run("delete", "pod", deleted["name"], "-n", namespace, "--wait=false")
    final = wait_finished(kube, namespace, name, timeout=300)
    assert final["phase"] == "Succeeded", final
    assert step_of(final) == 150 and final["checkpoint"]["step"] == 150
    return running, final, str(deleted["uid"])


def test_a_torchrun_script_reports_and_resumes_from_its_checkpoint_after_a_pod_is_deleted(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    running, final, deleted = worker_1_deleted_mid_run(
        kube, namespace, script_job("script", user_image, ["torchrun", "/scripts/train.py"]),
        lambda s: step_of(s) >= 30 and s.get("checkpoint") and "loss" in s.get("progress", {}),
        what="STEP, LOSS and LAST-CKPT from the script",
    )  # fmt: skip
    assert running["phase"] == "Running" and running["worldSize"] == 2
    assert final.get("restarts", 0) == 0  # a deleted pod is no failure
    # The replacement (the pod of worker 1's slot that was not deleted) resumed where the group
    # stopped, not from scratch.
    replacement = wait_for_worker(kube, namespace, "script", 1, other_than=deleted)
    starts = resumed_from(kube, namespace, replacement["metadata"]["name"])
    assert starts and starts[-1] >= step_of(running), starts


def test_a_plain_python_script_with_env_rendezvous_runs_with_three_workers(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    add_scripts(kube, namespace)
    job = script_job("plain", user_image, ["python3", "/scripts/train.py"], replicas=3)
    job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "40"
    kube.apply(job, namespace)
    final = wait_finished(kube, namespace, "plain", timeout=300)
    assert final["phase"] == "Succeeded", final
    assert step_of(final) == 40 and final["progress"]["worldSize"] == 3
    for index in range(3):
        assert resumed_from(kube, namespace, worker_name(kube, namespace, "plain", index)) == [0]


def test_a_plain_python_script_restarted_after_a_pod_is_deleted_resumes_its_checkpoint(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    # Rank 0 hosts the group's store, as under Kubeflow's PyTorchJob: it goes with the processes,
    # so the next group starts from a clean one (a store that outlived them held the old group's
    # keys, and new tries failed on them).
    running, final, _ = worker_1_deleted_mid_run(
        kube, namespace, script_job("plain", user_image, ["python3", "/scripts/train.py"]),
        lambda s: step_of(s) >= 30 and s.get("checkpoint"), what="step 30 and a checkpoint",
    )  # fmt: skip
    # The survivor's broken group is a failure (counted), and so at most once the replacement's
    # own first try; the new group then forms at once. (With the store in the rendezvous pod,
    # holding the old group's keys, it took 6 failed tries here before one got through.)
    assert final.get("restarts", 0) <= 2, final
    for index in range(2):  # each process of the new group went on from the checkpoint
        attempt = final.get("restartAttempt", 0)
        pod = worker_name(kube, namespace, "plain", index, attempt)  # its last incarnation
        starts = resumed_from(kube, namespace, pod)
        assert starts[-1] >= running["checkpoint"]["step"], (index, starts)


def test_an_elastic_script_job_scaled_from_two_to_three_trains_at_the_new_size(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    add_scripts(kube, namespace)
    job = script_job(
        "grow", user_image, ["torchrun", "/scripts/train.py"],
        elastic={"minReplicas": 2, "maxReplicas": 3},
    )  # fmt: skip
    kube.apply(job, namespace)
    status_when(
        kube, namespace, "grow", lambda s: step_of(s) >= 20, timeout=240, what="training at 2"
    )
    kube.run("scale", "dtj", "grow", "--replicas=3", "-n", namespace)
    grown = status_when(
        kube, namespace, "grow",
        lambda s: (s.get("progress") or {}).get("worldSize") == 3,
        timeout=240, what="the group training at 3",
    )  # fmt: skip
    assert grown["phase"] in ("Running", "Resizing")
    final = wait_finished(kube, namespace, "grow", timeout=300)
    assert final["phase"] == "Succeeded" and step_of(final) == 150, final
    events = kube.get("events", namespace=namespace)["items"]
    resized = [e for e in events if e.get("reason") == "Resized"]
    assert any("from 2 to 3 processes" in str(e.get("message") or e.get("note")) for e in resized)


def test_a_script_that_stalls_is_found_hung_and_its_gang_restarted(
    kube: Kube, operator: InstalledOperator, user_image: str, namespace: str
) -> None:
    add_scripts(kube, namespace)
    policy = {"hangDetection": {"minSeconds": 8, "stepTimeMultiple": 5}}
    command = ["torchrun", "/scripts/stall_once.py"]
    kube.apply(script_job("stall", user_image, command, failurePolicy=policy), namespace)
    final = wait_finished(kube, namespace, "stall", timeout=300)
    assert final["phase"] == "Succeeded", final
    assert final["lastFailure"]["class"] == "Hang"
    assert final["lastFailure"]["action"] == "RestartGang"
    assert final["restartAttempt"] == 1 and step_of(final) == 60
    assert "no step for" in final["lastFailure"]["message"]
    assert not job_status(kube, namespace, "stall").get("hang")


@pytest.fixture(scope="module")
def hf_image(local_nodes: LocalNodes) -> str:
    """The user image with transformers, accelerate and the client library (tools/images)."""
    return local_nodes.image("hf")


def test_a_hugging_face_job_reports_and_resumes_from_its_own_checkpoint(
    kube: Kube, operator: InstalledOperator, hf_image: str, namespace: str
) -> None:
    add_scripts(kube, namespace, HF)
    job = script_job("hf", hf_image, ["torchrun", "/scripts/hf_train.py"], client=False)
    # The root filesystem is read-only: Hugging Face's caches go to the scratch volume.
    job["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "HOME", "value": "/tmp"}
    )
    kube.apply(job, namespace)
    running = status_when(
        kube, namespace, "hf",
        lambda s: (s.get("checkpoint") or {}).get("step", 0) >= 20
        and "loss" in (s.get("progress") or {}),
        timeout=300, what="steps, loss and a checkpoint-20 from the Trainer",
    )  # fmt: skip
    saved = running["checkpoint"]
    assert saved["path"].endswith(f"/hf/checkpoint-{saved['step']}")
    deleted = wait_for_worker(kube, namespace, "hf", 1)["metadata"]
    before = re.findall(r"resuming from (\S+)", pod_log(kube, namespace, deleted["name"]))
    assert before[0] == "None"
    kube.run("delete", "pod", deleted["name"], "-n", namespace, "--wait=false")
    final = wait_finished(kube, namespace, "hf", timeout=400)
    assert final["phase"] == "Succeeded", final
    assert step_of(final) == 150 and final["checkpoint"]["step"] == 150
    replacement = wait_for_worker(kube, namespace, "hf", 1, other_than=deleted["uid"])
    log = pod_log(kube, namespace, replacement["metadata"]["name"])
    resumed = re.findall(r"resuming from (\S+)", log)
    assert resumed and "/hf/checkpoint-" in resumed[-1], log[-2000:]  # its own checkpoint
