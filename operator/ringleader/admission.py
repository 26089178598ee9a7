"""The validating admission webhook: `kubectl apply` refuses a job whose pods would be refused.

The CRD's schema and CEL rules hold the template to core/v1's shapes, not to everything the API
server checks when a pod is created (names that are DNS labels, ports in range, mounts that name a
volume, Pod Security, other admission webhooks). Rather than copy those rules, which change with
every Kubernetes release, the webhook asks the API server itself: it builds the job's first
worker pod and its rendezvous pod as the operator would and creates them as a server-side dry run
(validation and every admission plugin run; nothing is stored). A refusal that lasts refuses the
job, the pod's field renamed to the job's own; one that may pass later (a quota) lets it through,
to wait Pending as it would anyway.

Registered with failurePolicy Ignore: while no operator answers, jobs are accepted as before and
a bad one ends Failed with the refusal quoted (reconcile.plan_refusal), never in a loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ringleader import builders, validation
from ringleader import constants as c
from ringleader.apiclient import ApiError
from ringleader.constants import Framework
from ringleader.kube import RetryableError, refusal_of, status_body
from ringleader.models import DistributedTrainingJob, InvalidJob, parse_job

Obj = dict[str, Any]
DryRun = Callable[[Obj], None]  # creates a pod as a dry run; raises the API server's refusal

WEBHOOK_ID = "validate-job"  # kopf serves the handler at /<id>
WEBHOOK_NAME = "validate-job.ringleader.dev"
CONFIGURATION_NAME = "ringleader-validation"
FAILURE_POLICY = "Ignore"
TIMEOUT_SECONDS = 10


def review(body: Obj, old: Obj | None, dry_run: DryRun) -> str | None:
    """Why the job must be refused, naming the field; None to admit it."""
    if old is not None and old.get("spec") == body.get("spec"):
        return None  # metadata alone changed: nothing a pod is made from
    try:
        job = parse_job(body)
    except InvalidJob as invalid:
        return str(invalid)
    problems = validation.validate_job(job)
    if problems:
        return "; ".join(problems)
    return _dry_run_refusal(job, dry_run)


def _dry_run_refusal(job: DistributedTrainingJob, dry_run: DryRun) -> str | None:
    checks = [(builders.build_worker_pods(job, 0)[0], _worker_field)]
    if job.spec.framework == Framework.PYTORCH:  # a TensorFlow job has no rendezvous pod
        checks.append((builders.build_rendezvous_pod(job), _rendezvous_field))
    for pod, field_of in checks:
        try:
            dry_run(as_dry_run(pod))
        except RetryableError:
            return None  # no answer in time: admitted, and the operator says what it meets
        except ApiError as error:
            refusal = explain(
                error, pod["metadata"]["name"], field_of, _whole_pod_field(job, error)
            )
            if refusal is not None:
                return refusal
    return None


def as_dry_run(pod: Obj) -> Obj:
    """The pod as it can be created before its job exists: no owner, a generated name (a pod of
    that name may exist already, from the job before its update)."""
    trial = copy.deepcopy(pod)
    meta = trial["metadata"]
    meta.pop("ownerReferences", None)
    meta["generateName"] = f"{meta.pop('name')}-"
    return trial


def explain(
    error: ApiError, pod_name: str, field_of: Callable[[str], str], whole_pod: str
) -> str | None:
    """The refusal in the job's terms when it lasts (invalid, forbidden); None when it may pass
    later (a quota) or says nothing about the pod (throttled, a server error, a name taken).
    field_of renames a pod's field; whole_pod is the job's field a refusal of the whole pod
    (Pod Security, a missing PriorityClass, another webhook) is put under."""
    refused = refusal_of(error, "Pod", pod_name)
    if refused is None or not refused.lasting:
        return None
    details = status_body(error).get("details") or {}
    causes = [x for x in details.get("causes") or [] if x.get("field")]
    if causes:
        return "; ".join(f"{field_of(x['field'])}: {x.get('message', '')}" for x in causes)
    # The API server's words, about the pod the job would make (not the dry run's made-up name).
    generated = details.get("name")
    message = refused.message.replace(generated, pod_name) if generated else refused.message
    return f"{whole_pod}: {message}"


def _whole_pod_field(job: DistributedTrainingJob, error: ApiError) -> str:
    scheduling = job.spec.scheduling
    if scheduling and scheduling.priority_class_name and "PriorityClass" in str(error.body):
        return "spec.scheduling.priorityClassName"  # the one pod field set outside the template
    return "spec.template"


def _worker_field(field: str) -> str:
    # The worker pod is the template, plus what Ringleader adds.
    for pod_part, job_part in (
        ("spec.", "spec.template.spec."),
        ("metadata.", "spec.template.metadata."),
    ):
        if field.startswith(pod_part):
            return job_part + field[len(pod_part) :]
    return f"spec.template: {field}"


def _rendezvous_field(field: str) -> str:
    return f"the rendezvous pod's {field} (from spec.template)"


def webhook_configuration(client_config: Obj) -> Obj:
    """The ValidatingWebhookConfiguration that sends jobs' creates and spec updates here; the
    chart renders the same webhook with a Service, the local cluster with a URL."""
    webhook = {
        "name": WEBHOOK_NAME,
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": [c.GROUP],
                "apiVersions": [c.VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": [c.PLURAL],
                "scope": "Namespaced",
            }
        ],
        "admissionReviewVersions": ["v1"],
        # Dry runs only: nothing is written, so a dry-run apply may call it too.
        "sideEffects": "None",
        "failurePolicy": FAILURE_POLICY,
        "timeoutSeconds": TIMEOUT_SECONDS,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [webhook],
    }
