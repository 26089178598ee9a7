"""`kubectl apply` refuses a job whose pods the API server would refuse, naming the job's field:
the operator's validating webhook, served as the chart serves it, dry-running the pods on the
real API server."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from tests.harness import OperatorProcess
from tests.integration.test_operator import make_job
from tests.kube import WORKER_TOKEN, Kube, KubectlError, wait_until

Obj = dict[str, Any]


def with_trainer(job: Obj, **fields: Any) -> Obj:
    out = copy.deepcopy(job)
    out["spec"]["template"]["spec"]["containers"][0].update(fields)
    return out


def refusal(kube: Kube, namespace: str, job: Obj, *flags: str) -> str | None:
    """What kubectl apply says when it refuses the job; None when it applies it."""
    try:
        kube.run("apply", "-n", namespace, *flags, "-f", "-", stdin=json.dumps(job))
    except KubectlError as refused:
        return str(refused)
    return None


@pytest.fixture
def webhook(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    """The session operator's webhook answering (it starts after the operator's startup, and
    the API server admits whatever it sends while no webhook answers)."""
    bad = with_trainer(make_job(name="probe"), name="Probe")
    wait_until(
        lambda: refusal(kube, namespace, bad, "--dry-run=server") is not None,
        timeout=60,
        what="the operator's admission webhook answering",
    )


@pytest.mark.parametrize(
    ("fields", "named", "said"),
    [
        ({"name": "Trainer"}, "spec.template.spec.containers[0].name", "RFC 1123 label"),
        (
            {"ports": [{"containerPort": 70000}]},
            "spec.template.spec.containers[0].ports[0].containerPort",
            "between 1 and 65535",
        ),
        (
            {"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            "spec.template.spec.containers[0].volumeMounts[0].name",
            "Not found",
        ),
    ],
    ids=["container-name", "port", "mount-of-no-volume"],
)
@pytest.mark.usefixtures("webhook")
def test_apply_refuses_a_job_whose_pods_would_be_invalid_naming_the_jobs_field(
    kube: Kube, namespace: str, fields: Obj, named: str, said: str
) -> None:
    job = with_trainer(make_job(), **fields)
    for flags in (("--dry-run=server",), ()):
        message = refusal(kube, namespace, job, *flags)
        assert message is not None, f"applied with {flags}"
        assert "denied the request" in message and named in message and said in message, message
    assert kube.run("get", "dtj", "-n", namespace, "-o", "name") == ""


def test_apply_refuses_a_job_the_namespaces_pod_security_forbids(
    kube: Kube, namespace: str, webhook: None
) -> None:
    kube.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    message = refusal(kube, namespace, make_job())  # no securityContext: not under restricted
    assert message is not None
    said = f'pods "train-worker-0-a0-{WORKER_TOKEN}" is forbidden: violates PodSecurity'
    assert re.search(said, message), message


def test_a_valid_job_and_an_update_of_its_labels_are_admitted(
    kube: Kube, namespace: str, webhook: None
) -> None:
    job = make_job()
    assert refusal(kube, namespace, job) is None
    kube.run("label", "dtj", "train", "-n", namespace, "team=vision")
    assert kube.get("dtj", "train", namespace=namespace)["metadata"]["labels"]["team"] == "vision"
