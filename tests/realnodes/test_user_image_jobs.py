"""A job in a user's own image on real nodes, through the operator: the plain torch image, with
nothing of Ringleader in it, runs a torchrun script from a ConfigMap to Succeeded — its workers
and its rendezvous pod in that image, found by their Services' DNS names, checkpointing to the
job's claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.test_training_through_the_operator import status_when, wait_finished
from tests.harness import InstalledOperator, LocalNodes
from tests.kube import Kube
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / "examples" / "scripts" / "train.py"
STEPS = 60


def user_script_job(image: str) -> dict[str, Any]:
    """Two workers running examples/scripts/train.py by torchrun, in `image`, on real nodes."""
    env = [
        {"name": "TRAIN_STEPS", "value": str(STEPS)},
        {"name": "CHECKPOINT_EVERY", "value": "20"},
    ]
    trainer = {
        "name": "trainer",
        "image": image,
        "imagePullPolicy": "Never",  # built here and imported into the nodes; no registry
        "command": ["torchrun", "/scripts/train.py"],
        "env": env,
        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}],
        "resources": {"requests": {"cpu": "250m"}},
    }
    template = {
        "spec": {
            "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
            "terminationGracePeriodSeconds": 10,
            "containers": [trainer],
            "volumes": [{"name": "scripts", "configMap": {"name": "scripts"}}],
        }
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": "user"},
        "spec": {"replicas": 2, "checkpoint": {"size": "1Gi"}, "template": template},
    }


def test_a_torchrun_script_in_the_plain_torch_image_runs_to_succeeded(
    kube: Kube, namespace: str, operator: InstalledOperator, local_nodes: LocalNodes
) -> None:
    image = local_nodes.image("user")
    kube.run("create", "configmap", "scripts", f"--from-file={TRAIN}", "-n", namespace)
    kube.apply(user_script_job(image), namespace)
    status_when(
        kube, namespace, "user", lambda s: s.get("phase") == "Running",
        timeout=300, what="the workers running",
    )  # fmt: skip
    rendezvous = kube.get("pod", "user-rdzv", namespace)
    assert rendezvous["spec"]["containers"][0]["image"] == image
    final = wait_finished(kube, namespace, "user", timeout=300)
    pods = kube.run("get", "pods", "-n", namespace, "-o", "wide")
    assert final["phase"] == "Succeeded", f"{final}\n{pods}"
    for rank, pod in enumerate(["user-worker-0-a0", "user-worker-1-a0"]):
        log = kube.run("logs", "-n", namespace, pod)  # a real kubelet keeps the logs
        assert f"rank {rank} of 2: training from step 0" in log, log
    # No client library in the image: no step is claimed, and no hang was guessed.
    assert "progress" not in final and final.get("restarts", 0) == 0, final
