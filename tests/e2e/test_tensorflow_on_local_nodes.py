"""A TensorFlow job on real nodes: the example itself (examples/tensorflow-job.yaml, its script
from a ConfigMap) in the TensorFlow image trains across two pods under MultiWorkerMirroredStrategy
with the TF_CONFIG the operator gives; a worker pod deleted mid-run restarts the group, which
resumes at its last finished epoch (Keras's BackupAndRestore on the job's volume)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_training_through_the_operator import (
    example_on_local_nodes,
    pod_log,
    status_when,
    wait_finished,
)
from tests.e2e.test_user_scripts_on_local_nodes import step_of
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube, wait_for_worker, worker_name

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "tensorflow-job.yaml"
SCRIPT = REPO_ROOT / "examples" / "scripts" / "tf_train.py"
NAME = "tf-digits"
EPOCHS = 5
# 1,437 training digits (80 % of 1,797) in global batches of 2 workers x 32.
STEPS_PER_EPOCH = 1437 // 64


@pytest.fixture(scope="module")
def tf_image(local_nodes: LocalNodes) -> str:
    """tensorflow, tf-keras, scikit-learn and the client library (tools/images)."""
    return local_nodes.image("tensorflow")


def epochs_run(log: str) -> list[int]:
    """The epochs (1-based) Keras said it ran, in a worker's log."""
    return [int(e) for e in re.findall(rf"Epoch (\d+)/{EPOCHS}", log)]


def test_the_tensorflow_example_trains_on_two_pods_and_resumes_its_epoch_after_a_pod_is_deleted(
    kube: Kube, operator: InstalledOperator, tf_image: str, namespace: str
) -> None:
    kube.run("create", "configmap", "tf-script", f"--from-file={SCRIPT}", "-n", namespace)
    kube.apply(example_on_local_nodes(EXAMPLE, tf_image, step_seconds="0.25"), namespace)
    backed_up = status_when(
        kube, namespace, NAME,
        lambda s: (s.get("checkpoint") or {}).get("step", 0) >= 2 * STEPS_PER_EPOCH,
        timeout=300, what="two epochs backed up",
    )  # fmt: skip
    assert backed_up["checkpoint"]["path"] == "/checkpoints/backup"
    assert backed_up["progress"]["loss"] > 0
    gone = wait_for_worker(kube, namespace, NAME, 1)["metadata"]
    kube.run("delete", "pod", gone["name"], "-n", namespace, "--wait=false")

    final = wait_finished(kube, namespace, NAME, timeout=400)
    assert final["phase"] == "Succeeded", final
    # The deletion itself restarted the group (not its survivor failing after it), uncounted.
    last = final["lastFailure"]
    assert (last["action"], last["reason"], last["pod"]) == (
        "RestartGang",
        "PodDeleted",
        gone["name"],
    )
    assert final.get("restarts", 0) == 0
    attempt = final["restartAttempt"]
    assert attempt == 1
    assert step_of(final) == EPOCHS * STEPS_PER_EPOCH and "loss" in final["progress"]
    chief = pod_log(kube, namespace, worker_name(kube, namespace, NAME, 0, attempt))
    resumed = epochs_run(chief)
    # It started again at an epoch after the two backed up: fewer epochs than a fresh start.
    assert resumed and resumed[0] >= 3 and resumed[-1] == EPOCHS, chief[-3000:]
    [accuracy] = re.findall(r"held-out accuracy ([0-9.]+)", chief)
    assert float(accuracy) >= 0.90
