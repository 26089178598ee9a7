"""The operator as users run it: installed by `helm install` from its image, in the cluster, on
the system node; its webhook is called by the API server, and what the kubelet says of a pod
(an OOM kill) reaches the job's status."""

from __future__ import annotations

import pytest

from tests.e2e.test_training_through_the_operator import (
    RESTRICTED_CONTAINER,
    digits_job,
    wait_finished,
)
from tests.harness import InstalledOperator
from tests.kube import Kube, KubectlError
from tools.localcluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from tools.realnodes.naming import SYSTEM_NODE

CHART_USER = "65532"  # the operator image's own user (operator/Dockerfile)


def test_the_operator_runs_in_the_cluster_as_the_chart_installs_it(
    kube: Kube, operator: InstalledOperator
) -> None:
    [pod] = kube.get("pods", namespace=OPERATOR_NAMESPACE)["items"]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == SYSTEM_NODE, pod["spec"]
    assert pod["spec"]["containers"][0]["image"] == operator.image
    assert pod["spec"]["serviceAccountName"] == "ringleader"
    [container] = pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Admitted under the restricted standard, and running as the image's non-root user.
    labels = kube.get("namespace", OPERATOR_NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    uid = kube.run("exec", "-n", OPERATOR_NAMESPACE, pod["metadata"]["name"], "--", "id", "-u")
    assert uid.strip() == CHART_USER


def test_a_job_the_restricted_standard_refuses_is_refused_by_the_webhook_at_apply(
    kube: Kube, operator: InstalledOperator, namespace: str
) -> None:
    job = digits_job("privileged", "any:image")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {**RESTRICTED_CONTAINER, "allowPrivilegeEscalation": True}
    with pytest.raises(KubectlError) as refused:
        kube.apply(job, namespace)
    # The webhook dry-ran the worker pod in the namespace: Pod Security admission said why.
    message = str(refused.value)
    assert "violates PodSecurity" in message and "allowPrivilegeEscalation" in message, message
    assert not kube.get("dtj", namespace=namespace)["items"]


# Zero-filled, so every page is touched: the kernel's OOM killer, not an allocation error.
OOM = "import time; hog = bytearray(512 * 2**20); time.sleep(600)"


def test_a_worker_over_its_memory_limit_is_oom_killed_and_classified_out_of_memory(
    kube: Kube, operator: InstalledOperator, trainer_image: str, namespace: str
) -> None:
    job = digits_job("hog", trainer_image)
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    trainer["command"], trainer["args"] = ["python", "-c", OOM], []
    trainer["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "128Mi"}}  # fmt: skip
    job["spec"]["failurePolicy"] = {"rules": [{"classes": ["OutOfMemory"], "action": "FailJob"}]}
    kube.apply(job, namespace)
    final = wait_finished(kube, namespace, "hog", timeout=300)
    assert final["phase"] == "Failed", (final, operator.log_tail())
    last = final["lastFailure"]
    assert (last["class"], last["reason"], last["exitCode"]) == ("OutOfMemory", "OOMKilled", 137)
    # The kubelet saw the kernel's OOM kill: the container's own record says so.
    pod = kube.get("pod", last["pod"], namespace)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
