"""The environment of a worker container: the env contract, then defaults the user may override."""

from __future__ import annotations

import json
from typing import Any

from ringleader import constants as c
from ringleader import naming, rendezvous
from ringleader.constants import Framework
from ringleader.models import DistributedTrainingJob, DistributedTrainingJobSpec, FailurePolicy

EnvVar = dict[str, Any]

# Defaults for NCCL and torch's process group; a user's env entry of the same name replaces one.
NCCL_DEFAULTS: tuple[tuple[str, str], ...] = (
    # A failed or timed-out collective aborts the communicator and ends the process, so the
    # elastic agent restarts it from a checkpoint instead of the gang hanging.
    ("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"),
    # TORCH_NCCL_BLOCKING_WAIT is deliberately not set: it makes the CPU wait on every collective,
    # which kills compute/communication overlap; async error handling already bounds hangs.
    # Warnings only: enough to explain a failure in `kubectl logs`, without INFO's volume.
    ("NCCL_DEBUG", "WARN"),
    # Logs reach `kubectl logs` as they are written, not when a buffer fills or the pod dies.
    ("PYTHONUNBUFFERED", "1"),
)


def compute_gpus_per_pod(template: dict[str, Any]) -> int:
    """nvidia.com/gpu limit (or request) of the template's first container; 0 without one, or
    when it is not a whole number (validation.check_resources fails such a job)."""
    containers = template.get("spec", {}).get("containers") or [{}]
    resources = containers[0].get("resources") or {}
    for section in ("limits", "requests"):
        value = (resources.get(section) or {}).get(c.GPU_RESOURCE)
        if value is not None:
            return int(str(value)) if str(value).isdigit() else 0
    return 0


def compute_nproc_per_node(spec: DistributedTrainingJobSpec) -> int:
    """Processes per worker pod: the number given, or one per GPU (auto), at least one."""
    if spec.nproc_per_node != "auto":
        return spec.nproc_per_node
    return max(1, compute_gpus_per_pod(spec.template))


def compute_nnodes(spec: DistributedTrainingJobSpec) -> str:
    """torchrun's --nnodes: min:max for an elastic job, replicas:replicas for a fixed one."""
    if spec.elastic is None:
        return f"{spec.replicas}:{spec.replicas}"
    return f"{spec.elastic.min_replicas}:{spec.elastic.max_replicas}"


def _value(name: str, value: object) -> EnvVar:
    return {"name": name, "value": str(value)}


def build_contract_env(job: DistributedTrainingJob, index: int, attempt: int) -> list[EnvVar]:
    """The env contract of worker `index` in restart attempt `attempt`, in a fixed order."""
    spec, name = job.spec, job.metadata.name
    namespace = job.metadata.namespace or "default"
    nproc = compute_nproc_per_node(spec)
    checkpoint_dir = spec.checkpoint.mount_path if spec.checkpoint else c.DEFAULT_CHECKPOINT_DIR
    keep = spec.checkpoint.keep if spec.checkpoint else c.DEFAULT_CHECKPOINT_KEEP
    # The elastic agent counts in-place process restarts; it gets the same budget as the job.
    max_restarts = (spec.failure_policy or FailurePolicy()).max_restarts
    preflight = spec.networking.preflight if spec.networking else None
    asked = [_value(c.ENV_PREFLIGHT_MEGABYTES, preflight.megabytes)] if preflight else []
    return [
        # For scripts run without torchrun: rank 0 serves the store, so it goes with the group's
        # processes and a restarted group starts from an empty one. (Served by the rendezvous
        # pod, which outlives them, it held the last group's keys, and new tries failed on them:
        # 6 counted restarts after one pod deletion, in the e2e test of it.)
        _value(c.ENV_MASTER_ADDR, naming.worker_address(name, namespace, 0)),
        _value(c.ENV_MASTER_PORT, c.RANK_0_STORE_PORT),
        # Launch-time values; the agent sets the real ones per process after each rendezvous.
        _value(c.ENV_WORLD_SIZE, spec.replicas * nproc),
        _value(c.ENV_RANK, index * nproc),
        _value(c.ENV_PET_NNODES, compute_nnodes(spec)),
        _value(c.ENV_PET_NPROC_PER_NODE, nproc),
        _value(c.ENV_PET_RDZV_BACKEND, "c10d"),
        _value(c.ENV_PET_RDZV_ENDPOINT, rendezvous.endpoint(job)),
        _value(c.ENV_PET_RDZV_ID, f"{name}-{attempt}"),
        _value(c.ENV_PET_RDZV_CONF, "is_host=false"),
        _value(c.ENV_PET_MAX_RESTARTS, max_restarts),
        _value(c.ENV_DISABLE_SHARED_RDZV_STORE, "1"),
        _value(c.ENV_JOB_NAME, name),
        _value(c.ENV_NAMESPACE, namespace),
        {
            "name": c.ENV_POD_NAME,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
        _value(c.ENV_REPLICA_INDEX, index),
        _value(c.ENV_RESTART_ATTEMPT, attempt),
        _value(c.ENV_CHECKPOINT_DIR, checkpoint_dir),
        _value(c.ENV_CHECKPOINT_KEEP, keep),
        _value(c.ENV_PROGRESS_PORT, c.PROGRESS_PORT),
        *asked,
        *build_framework_env(job, index),
    ]


def build_framework_env(job: DistributedTrainingJob, index: int) -> list[EnvVar]:
    """What the job's framework reads beside the contract: TF_CONFIG for TensorFlow."""
    if job.spec.framework != Framework.TENSORFLOW:
        return []
    return [_value(c.ENV_TF_CONFIG, build_tf_config(job, index))]


def build_tf_config(job: DistributedTrainingJob, index: int) -> str:
    """TF_CONFIG of worker `index`: every worker's stable DNS name and port, and its own task.
    The layout of Kubeflow's TFJob, so scripts written for it run unchanged."""
    name, namespace = job.metadata.name, job.metadata.namespace or "default"
    workers = [
        f"{naming.worker_address(name, namespace, i)}:{c.TF_WORKER_PORT}"
        for i in range(job.spec.replicas)
    ]
    config = {
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": index},
        "environment": "cloud",
    }
    return json.dumps(config, separators=(",", ":"))


def build_default_env(spec: DistributedTrainingJobSpec) -> list[EnvVar]:
    """NCCL and runtime defaults, plus the socket interface when networking names one."""
    env = [_value(name, value) for name, value in NCCL_DEFAULTS]
    ifname = spec.networking.socket_ifname if spec.networking else None
    if ifname:
        env += [_value("NCCL_SOCKET_IFNAME", ifname), _value("GLOO_SOCKET_IFNAME", ifname)]
    return env


def merge_env(contract: list[EnvVar], defaults: list[EnvVar], user: list[EnvVar]) -> list[EnvVar]:
    """Contract first (user entries may refer to it as $(RANK)), then defaults, then the user's."""
    user_names = {var.get("name") for var in user}
    kept_defaults = [var for var in defaults if var["name"] not in user_names]
    return [*contract, *kept_defaults, *user]
