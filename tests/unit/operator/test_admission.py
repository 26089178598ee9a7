"""The admission webhook's decisions (admission.py), with the API server's dry-run answers as the
API server gives them; tests/integration/test_admission_webhook.py asks a real one."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ringleader import admission
from ringleader import constants as c
from ringleader.apiclient import ApiError
from ringleader.kube import RetryableError
from tests.unit.operator.jobs import make_job, with_container
from tests.unit.operator.workers import TOKEN

Obj = dict[str, Any]
NAME_MESSAGE = 'Invalid value: "Trainer": a lowercase RFC 1123 label must consist of ...'


def refusal(status: int, message: str, causes: list[Obj] | None = None, name: str = "") -> ApiError:
    error = ApiError(status=status, reason="Unprocessable Entity")
    details: Obj = {"kind": "pods", "causes": causes or []}
    if name:
        details["name"] = name
    error.body = json.dumps({"kind": "Status", "message": message, "details": details})
    return error


class DryRuns:
    """Records the pods dry-run and answers each with the next of `answers` (None: admitted)."""

    def __init__(self, *answers: Exception | None) -> None:
        self.answers = list(answers)
        self.pods: list[Obj] = []

    def __call__(self, pod: Obj) -> None:
        self.pods.append(pod)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


def test_a_valid_job_is_admitted_after_its_worker_and_rendezvous_pods_pass_a_dry_run() -> None:
    dry_runs = DryRuns()
    assert admission.review(make_job(), None, dry_runs) is None
    roles = [p["metadata"]["labels"][c.LABEL_ROLE] for p in dry_runs.pods]
    assert roles == [c.ROLE_WORKER, c.ROLE_RENDEZVOUS]
    for pod in dry_runs.pods:
        # Before the job exists: no owner yet, and a name no pod of an earlier job holds.
        assert "ownerReferences" not in pod["metadata"] and "name" not in pod["metadata"]
        assert pod["metadata"]["generateName"].startswith("digits-")


def test_an_invalid_worker_pod_is_refused_with_the_jobs_own_field_named() -> None:
    causes = [
        {"field": "spec.containers[0].name", "message": NAME_MESSAGE},
        {"field": "metadata.labels", "message": 'Invalid value: "a b"'},
    ]
    dry_runs = DryRuns(refusal(422, 'Pod "digits-worker-0-a0-x1" is invalid: ...', causes))
    message = admission.review(with_container(make_job(), name="Trainer"), None, dry_runs)
    assert message == (
        f"spec.template.spec.containers[0].name: {NAME_MESSAGE}; "
        'spec.template.metadata.labels: Invalid value: "a b"'
    )


def test_a_refused_rendezvous_pod_is_named_as_such() -> None:
    causes = [{"field": "spec.tolerations[0].operator", "message": "Unsupported value"}]
    dry_runs = DryRuns(None, refusal(422, "invalid", causes))
    message = admission.review(make_job(), None, dry_runs)
    assert message == (
        "the rendezvous pod's spec.tolerations[0].operator (from spec.template): Unsupported value"
    )


def test_a_forbidden_pod_is_refused_quoting_the_api_server_about_the_pod_the_job_makes() -> None:
    said = 'pods "digits-worker-0-a0-x7k2p" is forbidden: violates PodSecurity "restricted:latest"'
    dry_runs = DryRuns(refusal(403, said, name="digits-worker-0-a0-x7k2p"))
    message = admission.review(make_job(), None, dry_runs)
    # Named as a worker pod of the job is named, not by the dry run's made-up name.
    assert message is not None
    assert re.fullmatch(
        f'spec.template: pods "digits-worker-0-a0-{TOKEN}" is forbidden: violates PodSecurity '
        '"restricted:latest"',
        message,
    )


def test_a_missing_priority_class_is_put_under_the_jobs_priority_field() -> None:
    said = 'pods "digits-worker-0-a0-x1" is forbidden: no PriorityClass with name none-such'
    dry_runs = DryRuns(refusal(403, said, name="digits-worker-0-a0-x1"))
    job = make_job({"scheduling": {"priorityClassName": "none-such"}})
    message = admission.review(job, None, dry_runs)
    assert message is not None
    assert re.fullmatch(
        f'spec.scheduling.priorityClassName: pods "digits-worker-0-a0-{TOKEN}" is forbidden: '
        "no PriorityClass with name none-such",
        message,
    )


@pytest.mark.parametrize(
    "answer",
    [
        refusal(403, 'pods "p" is forbidden: exceeded quota: pods, requested: pods=1'),
        refusal(409, "already exists"),
        refusal(429, "too many requests"),
        refusal(500, "etcd is down"),
        RetryableError("dry-run create Pod: no answer: ReadTimeoutError"),
    ],
    ids=["quota", "name-taken", "throttled", "server-error", "no-answer"],
)
def test_what_may_pass_later_or_says_nothing_about_the_pod_is_admitted(answer: Exception) -> None:
    assert admission.review(make_job(), None, DryRuns(answer, answer)) is None


def test_a_job_the_models_or_checks_refuse_is_refused_without_a_dry_run() -> None:
    dry_runs = DryRuns()
    unparsable = admission.review(make_job({"replicas": "many"}), None, dry_runs)
    assert unparsable is not None and unparsable.startswith("spec.replicas: ")
    reserved = with_container(make_job(), env=[{"name": "RANK", "value": "3"}])
    message = admission.review(reserved, None, dry_runs)
    assert message is not None and "spec.template.spec.containers[0].env" in message
    assert dry_runs.pods == []


def test_an_update_that_leaves_the_spec_alone_is_admitted_unchecked() -> None:
    old = with_container(make_job(), name="Trainer")
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"team": "a"}}}
    dry_runs = DryRuns(refusal(422, "invalid", [{"field": "spec.containers[0].name"}]))
    assert admission.review(relabelled, old, dry_runs) is None and dry_runs.pods == []
    assert admission.review(make_job({"replicas": 3}), make_job(), dry_runs) is not None


def test_the_configuration_sends_creates_and_updates_of_jobs_with_no_side_effects() -> None:
    config = admission.webhook_configuration({"url": "https://127.0.0.1:9443/validate-job"})
    (webhook,) = config["webhooks"]
    assert webhook["rules"][0]["resources"] == [c.PLURAL]
    assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert (webhook["sideEffects"], webhook["failurePolicy"]) == ("None", "Ignore")
