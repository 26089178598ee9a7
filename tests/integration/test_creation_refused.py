"""The API server refusing a job's children, for real: a ResourceQuota, the restricted Pod
Security Standard, a name another object holds. Said in status at once, with the refusal quoted;
Pending while it may pass, Failed when it cannot; the job runs once the quota allows."""

from __future__ import annotations

from typing import Any

from tests.harness import OperatorProcess
from tests.integration.test_operator import job_status, make_job, wait_for_phase
from tests.kube import Kube, wait_until


def condition(kube: Kube, namespace: str) -> dict[str, Any]:
    """The condition of the job's phase: every one carries the decision's reason and message."""
    conditions = job_status(kube, namespace).get("conditions") or [{}]
    return dict(conditions[0])


def quota(pods: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": str(pods)}},
    }


def test_a_job_over_its_namespaces_quota_waits_saying_why_and_runs_when_it_is_raised(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(quota(1), namespace)  # the rendezvous pod fits, no worker does
    kube.apply(make_job(), namespace)
    waiting = wait_until(
        lambda: (c := condition(kube, namespace)).get("reason") == "CreationRefused" and c,
        timeout=60,
        what="the job saying its pods are refused",
    )
    status = job_status(kube, namespace)
    assert status["phase"] in ("Pending", "Starting") and "exceeded quota" in waiting["message"]
    assert not status["refusal"]["lasting"]
    kube.apply(quota(10), namespace)
    running = wait_for_phase(kube, namespace, "Running", timeout=120)  # the retries pace out
    assert "refusal" not in running


def test_a_job_whose_pods_break_the_namespaces_pod_security_fails_quoting_it(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Applied while no operator answers the admission webhook (which would refuse it: see
    # test_admission_webhook.py), the API server admits it (failurePolicy Ignore).
    kube.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    operator.stop()
    try:
        kube.apply(make_job(), namespace)  # no securityContext: not allowed under restricted
    finally:
        operator.start()
    failed = wait_for_phase(kube, namespace, "Failed", timeout=60)
    own = {c["type"]: c for c in failed["conditions"]}["Failed"]
    assert own["reason"] == "CreationRefused" and "violates PodSecurity" in own["message"]
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "CreationRefused" in reasons.split()


def test_a_job_whose_child_name_is_taken_fails_saying_so(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    taken = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "train-workers"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
    }
    kube.apply(taken, namespace)
    kube.apply(make_job(), namespace)
    failed = wait_for_phase(kube, namespace, "Failed", timeout=60)
    own = {c["type"]: c for c in failed["conditions"]}["Failed"]
    assert own["reason"] == "CreationRefused"
    assert "a Service named train-workers exists and is not this job's" in own["message"]
