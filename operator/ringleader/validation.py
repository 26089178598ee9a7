"""Pure checks of a job that the reconcile loop runs before building anything.

They repeat the CRD's CEL rules on the template (an API server with CEL off, or an object stored
before a rule existed, must still not produce broken pods) and add the ones CEL cannot express,
each with a message that names the field. A job that fails one fails with reason InvalidJob
instead of being retried for ever.
"""

from __future__ import annotations

import re
from typing import Any

from ringleader import constants as c
from ringleader.models import DistributedTrainingJob
from ringleader.quantity import parse_quantity

TEMPLATE = "spec.template.spec"
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def validate_job(job: DistributedTrainingJob) -> list[str]:
    """Every problem that would make the job's pods wrong; empty when the job is fine."""
    pod_spec: dict[str, Any] = job.spec.template.get("spec") or {}
    return [
        *check_name(job.metadata.name),
        *check_containers(pod_spec),
        *check_reserved_env(pod_spec),
        *check_reserved_volumes(pod_spec),
        *check_mount_paths(job, pod_spec),
        *check_restart_policy(pod_spec),
        *check_resources(pod_spec),
    ]


def check_name(name: str) -> list[str]:
    """The job name must fit into the children's DNS names."""
    if len(name) > c.MAX_JOB_NAME_LENGTH:
        return [f"metadata.name: at most {c.MAX_JOB_NAME_LENGTH} characters, got {len(name)}"]
    if not DNS_1035_LABEL.match(name):
        return [f"metadata.name: {name!r} must start with a letter and hold only a-z, 0-9, '-'"]
    return []


def check_containers(pod_spec: dict[str, Any]) -> list[str]:
    """The template needs at least one container, with an image (the trainer)."""
    containers = pod_spec.get("containers") or []
    if not containers:
        return [f"{TEMPLATE}.containers: at least one container (the trainer) is required"]
    return [
        f"{TEMPLATE}.containers[{i}].image: required"
        for i, container in enumerate(containers)
        if not container.get("image")
    ]


def check_reserved_env(pod_spec: dict[str, Any]) -> list[str]:
    """No container may set a name of the env contract: the operator sets those."""
    return [
        f"{TEMPLATE}.containers[{i}].env[{j}].name: {var.get('name')} is set by Ringleader for "
        "every worker (the env contract) and cannot be set in the template"
        for i, container in enumerate(pod_spec.get("containers") or [])
        for j, var in enumerate(container.get("env") or [])
        if var.get("name") in c.ENV_CONTRACT
    ]


def check_reserved_volumes(pod_spec: dict[str, Any]) -> list[str]:
    """Volume names starting with ringleader- belong to the operator."""
    return [
        f"{TEMPLATE}.volumes[{i}].name: names starting with '{c.RESERVED_VOLUME_PREFIX}' are "
        "reserved for the volumes Ringleader adds"
        for i, volume in enumerate(pod_spec.get("volumes") or [])
        if str(volume.get("name", "")).startswith(c.RESERVED_VOLUME_PREFIX)
    ]


def check_mount_paths(job: DistributedTrainingJob, pod_spec: dict[str, Any]) -> list[str]:
    """No container may mount something else where the checkpoint volume goes."""
    path = job.spec.checkpoint.mount_path if job.spec.checkpoint else c.DEFAULT_CHECKPOINT_DIR
    return [
        f"{TEMPLATE}.containers[{i}].volumeMounts[{j}].mountPath: {path} is where the "
        "checkpoint volume is mounted (spec.checkpoint.mountPath)"
        for i, container in enumerate(pod_spec.get("containers") or [])
        for j, mount in enumerate(container.get("volumeMounts") or [])
        if str(mount.get("mountPath", "")).rstrip("/") == path.rstrip("/")
    ]


def check_restart_policy(pod_spec: dict[str, Any]) -> list[str]:
    """Workers must not be restarted by the kubelet behind the operator's back."""
    policy = pod_spec.get("restartPolicy")
    if policy not in (None, "Never"):
        return [
            f"{TEMPLATE}.restartPolicy: must be Never or unset (got {policy}): Ringleader "
            "restarts workers itself"
        ]
    return []


def check_resources(pod_spec: dict[str, Any]) -> list[str]:
    """Every requested and limited amount is a quantity; GPUs come whole."""
    problems = []
    for i, container in enumerate(pod_spec.get("containers") or []):
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            for name, amount in (resources.get(section) or {}).items():
                where = f"{TEMPLATE}.containers[{i}].resources.{section}.{name}"
                problems += _check_amount(where, name, amount)
    return problems


def _check_amount(where: str, name: str, amount: object) -> list[str]:
    try:
        parse_quantity(amount)
    except ValueError:
        return [f"{where}: {amount!r} is not a quantity (e.g. 2, 500m, 4Gi)"]
    if name == c.GPU_RESOURCE and not str(amount).isdigit():
        # As the CRD's rule says it (and workerenv reads it): digits only, e.g. 8, not 8.0.
        return [f"{where}: {amount!r} must be a whole number of GPUs"]
    return []
