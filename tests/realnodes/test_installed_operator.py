"""The operator as users run it: installed by `helm install` from its image, in the cluster, on
the system node. Jobs run on real nodes in namespaces that enforce the restricted Pod Security
Standard; the operator reads the trainers' progress over the pod network, its webhook is called
by the API server, and a worker over its memory limit is really OOM-killed."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_training_through_the_operator import status_when, wait_finished
from tests.harness import InstalledOperator
from tests.kube import Kube, KubectlError
from tests.realnodes.conftest import RealNodes
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL, SYSTEM_NODE

RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")
}
# What the restricted standard asks of every container, with a read-only root filesystem on top.
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Paced (about 25 s of steps) so that the workers are still running when the test looks inside.
DIGITS_ARGS = [
    "--workload",
    "digits",
    "--epochs",
    "4",
    "--checkpoint-every",
    "20",
    "--min-step-seconds",
    "0.25",
]


@pytest.fixture
def restricted(kube: Kube) -> Iterator[str]:
    """A namespace of its own that admits only pods meeting the restricted Pod Security
    Standard, deleted afterwards."""
    name = f"r-{uuid.uuid4().hex[:10]}"
    manifest = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": RESTRICTED_LABELS}}  # fmt: skip
    kube.run("apply", "-f", "-", stdin=json.dumps(manifest))
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def restricted_job(name: str, image: str, container: dict[str, Any]) -> dict[str, Any]:
    """Two workers in `image` on the training nodes, each container restricted and its root
    filesystem read-only (/tmp an emptyDir), checkpointing to a claim of the job's own."""
    trainer = {
        "name": "trainer",
        "image": image,
        "imagePullPolicy": "Never",  # built here and imported into the nodes; no registry
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **container,
    }
    template = {
        "spec": {
            "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
            "terminationGracePeriodSeconds": 10,
            "containers": [trainer],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }
    }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name},
        "spec": {"replicas": 2, "checkpoint": {"size": "1Gi"}, "template": template},
    }


def test_the_operator_runs_in_the_cluster_as_the_chart_installs_it(
    kube: Kube, operator: InstalledOperator
) -> None:
    [pod] = kube.get("pods", namespace=OPERATOR_NAMESPACE)["items"]
    assert pod["spec"]["nodeName"] == SYSTEM_NODE, pod["spec"]
    assert pod["spec"]["containers"][0]["image"] == operator.image
    assert pod["spec"]["serviceAccountName"].startswith("ringleader")
    # Admitted under the restricted standard, and running as the chart's non-root user.
    labels = kube.get("namespace", OPERATOR_NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    uid = kube.run("exec", "-n", OPERATOR_NAMESPACE, pod["metadata"]["name"], "--", "id", "-u")
    assert uid.strip() == "65532"


def test_the_digits_job_trains_restricted_and_read_only_through_the_installed_operator(
    kube: Kube, restricted: str, operator: InstalledOperator, real_nodes: RealNodes
) -> None:
    image = real_nodes.image("trainer")
    command = {"command": ["python", "-m", "ringleader_trainer.launch"], "args": DIGITS_ARGS}
    kube.apply(restricted_job("digits", image, command), restricted)
    # Progress in status: the operator's pod read rank 0's endpoint over the pod network.
    status_when(
        kube, restricted, "digits", lambda s: (s.get("progress") or {}).get("step"),
        timeout=300, what="progress mirrored into status",
    )  # fmt: skip
    worker = "digits-worker-1-a0"
    probe = "import os; open('/tmp/ok', 'w'); print(os.getuid(), os.access('/', os.W_OK))"
    inside = kube.run("exec", "-n", restricted, worker, "--", "python", "-c", probe)
    assert inside.split() == ["1000", "False"], inside  # the image's user; / is read-only
    final = wait_finished(kube, restricted, "digits", timeout=420)
    assert final["phase"] == "Succeeded", (final, operator.log_tail())
    assert final["progress"]["step"] == final["checkpoint"]["step"], final
    log = kube.run("logs", "-n", restricted, "digits-worker-0-a0")
    evaluation = json.loads(
        log.split("ringleader: training finished; evaluation ", 1)[1].split("\n")[0]
    )
    assert evaluation["accuracy"] >= 0.9, evaluation


def test_a_job_the_restricted_standard_refuses_is_refused_by_the_webhook_at_apply(
    kube: Kube, restricted: str, operator: InstalledOperator, real_nodes: RealNodes
) -> None:
    job = restricted_job("privileged", "trainer:any", {"command": ["python", "-c", "pass"]})
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {**RESTRICTED_CONTAINER, "allowPrivilegeEscalation": True}
    with pytest.raises(KubectlError) as refused:
        kube.apply(job, restricted)
    # The webhook dry-ran the worker pod in the namespace: Pod Security admission said why.
    message = str(refused.value)
    assert "violates PodSecurity" in message and "allowPrivilegeEscalation" in message, message
    assert not kube.get("dtj", namespace=restricted)["items"]


OOM = (
    "import time; hog = bytearray(512 * 2**20); time.sleep(600)"  # zero-filled: every page touched
)


def test_a_worker_over_its_memory_limit_is_oom_killed_and_classified_out_of_memory(
    kube: Kube, restricted: str, operator: InstalledOperator, real_nodes: RealNodes
) -> None:
    image = real_nodes.image("trainer")
    limits = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}
    job = restricted_job("hog", image, {"command": ["python", "-c", OOM], "resources": limits})
    policy = {"rules": [{"classes": ["OutOfMemory"], "action": "FailJob"}]}
    job["spec"]["failurePolicy"] = copy.deepcopy(policy)
    kube.apply(job, restricted)
    final = wait_finished(kube, restricted, "hog", timeout=300)
    assert final["phase"] == "Failed", (final, operator.log_tail())
    last = final["lastFailure"]
    assert (last["class"], last["reason"], last["exitCode"]) == ("OutOfMemory", "OOMKilled", 137)
    # The kubelet saw the kernel's OOM kill: the container's own record says so.
    pod = kube.get("pod", last["pod"], restricted)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
