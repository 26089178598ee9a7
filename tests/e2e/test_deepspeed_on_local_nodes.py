"""DeepSpeed through the operator on real nodes: the example job itself
(examples/deepspeed-job.yaml, its script and DeepSpeed config in ConfigMaps made as its header
says) in the deepspeed image, ZeRO stage 2 across two pods, a worker pod deleted mid-run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_training_through_the_operator import (
    example_on_local_nodes,
    pod_log,
    status_when,
    wait_finished,
)
from tests.e2e.test_user_scripts_on_local_nodes import step_of
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube, wait_for_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "deepspeed-job.yaml"
SCRIPT = REPO_ROOT / "examples" / "scripts" / "deepspeed_train.py"
CONFIG = REPO_ROOT / "examples" / "scripts" / "deepspeed_config.json"
STEPS = 120


@pytest.fixture(scope="module")
def deepspeed_image(local_nodes: LocalNodes) -> tuple[str, str]:
    """The deepspeed image (the user image with DeepSpeed, its CPU op built in, and the client
    library) and the one node it is imported into, where both workers run: imported alone, the
    image takes 5 GB of a node's disk, which this machine does not have twice."""
    node = local_nodes.names[0]
    return local_nodes.image("deepspeed", on=[node]), node


def example_job(image: str, node: str) -> dict[str, Any]:
    """The example on the local nodes, with fewer and slower steps, on `node`."""
    steps = {"TRAIN_STEPS": str(STEPS), "CHECKPOINT_EVERY": "10"}
    job = example_on_local_nodes(EXAMPLE, image, step_seconds="0.1", env=steps)
    job["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"] = node  # rdzv too
    return job


def add_config_maps(kube: Kube, namespace: str) -> None:
    """The script's and the DeepSpeed config's ConfigMaps, made as the example's header says."""
    kube.run("create", "configmap", "deepspeed-script", f"--from-file={SCRIPT}", "-n", namespace)
    config = f"--from-file=ds_config.json={CONFIG}"
    kube.run("create", "configmap", "deepspeed-config", config, "-n", namespace)


def starts(kube: Kube, namespace: str, pod: str) -> list[tuple[int, int]]:
    """(ZeRO stage, step) of each start of the pod's trainer process, from its log."""
    found = re.findall(r"ZeRO stage (\d+): training from step (\d+)", pod_log(kube, namespace, pod))
    return [(int(stage), int(step)) for stage, step in found]


def test_the_deepspeed_example_trains_with_zero_2_and_resumes_its_checkpoint_after_a_pod_is_deleted(
    kube: Kube, operator: InstalledOperator, deepspeed_image: tuple[str, str], namespace: str
) -> None:
    add_config_maps(kube, namespace)
    kube.apply(example_job(*deepspeed_image), namespace)
    running = status_when(
        kube, namespace, "deepspeed",
        lambda s: step_of(s) >= 30 and (s.get("checkpoint") or {}).get("step", 0) >= 30
        and "loss" in (s.get("progress") or {}),
        timeout=240, what="STEP, LOSS and a DeepSpeed checkpoint from the script",
    )  # fmt: skip
    assert running["phase"] == "Running" and running["worldSize"] == 2, running
    assert re.search(r"/deepspeed/step-\d{8}$", running["checkpoint"]["path"]), running
    survivor = wait_for_worker(kube, namespace, "deepspeed", 0)["metadata"]["name"]
    deleted = wait_for_worker(kube, namespace, "deepspeed", 1)["metadata"]
    assert starts(kube, namespace, deleted["name"]) == [(2, 0)]
    kube.run("delete", "pod", deleted["name"], "-n", namespace, "--wait=false")

    final = wait_finished(kube, namespace, "deepspeed", timeout=300)
    assert final["phase"] == "Succeeded", final
    assert step_of(final) == STEPS and final["checkpoint"]["step"] == STEPS, final
    assert final["progress"]["loss"] < 0.3, final  # it learned: an untrained model's is about 0.8
    # Both ranks of the new group went on from a DeepSpeed checkpoint, not from scratch: the
    # replacement pod, and the survivor's process that its torchrun agent restarted in place.
    replacement = wait_for_worker(kube, namespace, "deepspeed", 1, other_than=deleted["uid"])
    resumed = starts(kube, namespace, replacement["metadata"]["name"])
    assert resumed and resumed[-1][0] == 2 and resumed[-1][1] >= running["checkpoint"]["step"]
    survived = starts(kube, namespace, survivor)
    assert survived[0] == (2, 0) and survived[-1] == resumed[-1], survived
