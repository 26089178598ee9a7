"""The DistributedTrainingJob API as pydantic models: the single source of truth for the CRD.

Field names are snake_case in Python and camelCase on the wire (aliases). The CEL rules live next
to the fields they guard, so `crdgen` emits them and the tests can read them from one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ringleader import constants as c

JsonDict = dict[str, Any]  # a JSON object (pydantic accepts it in json_schema_extra)

# Kubernetes' resource.Quantity syntax (the same pattern controller-gen emits).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Where crdgen splices in a schema from the Kubernetes OpenAPI document instead of pydantic's.
OPENAPI_REF_KEY = "x-ringleader-openapi-ref"
POD_TEMPLATE_SPEC = "io.k8s.api.core.v1.PodTemplateSpec"


def rule(expr: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL validation rule as the CRD's x-kubernetes-validations wants it."""
    out: JsonDict = {"rule": expr, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _int_to_str(value: object) -> object:
    # YAML turns `size: 10` into an int; the API server keeps it as one (int-or-string).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_int_to_str),
    StringConstraints(pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

NPROC_RULE = rule(
    "type(self) == int ? self >= 1 : self == 'auto'",
    "spec.nprocPerNode must be 'auto' or an integer of at least 1",
)
NPROC_IMMUTABLE_RULE = rule(
    "self == oldSelf",
    "spec.nprocPerNode is immutable: the processes per pod are fixed for the life of the job",
)
NprocPerNode = Annotated[
    Annotated[int, Field(strict=True, ge=1)] | Literal["auto"],
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-validations": [NPROC_RULE, NPROC_IMMUTABLE_RULE],
        }
    ),
]

# `template` is typed as a plain dict here; crdgen replaces its schema with the real core/v1
# PodTemplateSpec, so the API server (not this model) checks the pod fields.
PodTemplate = Annotated[dict[str, Any], WithJsonSchema({OPENAPI_REF_KEY: POD_TEMPLATE_SPEC})]

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",  # mirrors the API server's strict field validation
        use_attribute_docstrings=True,
    )


ELASTIC_RANGE_RULE = rule(
    "self.minReplicas <= self.maxReplicas",
    "spec.elastic.minReplicas must be less than or equal to spec.elastic.maxReplicas",
    ".minReplicas",
)
ELASTIC_IMMUTABLE_RULE = rule(
    "self == oldSelf",
    "spec.elastic is immutable: every worker's rendezvous was configured with min:max at start",
)


class ElasticPolicy(_Model):
    """Lets the job run with any number of workers between minReplicas and maxReplicas."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [ELASTIC_RANGE_RULE, ELASTIC_IMMUTABLE_RULE]}
    )

    min_replicas: int = Field(ge=1)
    """Fewest workers the job keeps training with; below this it waits or fails."""
    max_replicas: int = Field(ge=1)
    """Most workers the job grows to when capacity allows."""


CHECKPOINT_SOURCE_RULE = rule(
    "has(self.claimName) != has(self.size)",
    "spec.checkpoint must set exactly one of claimName (an existing claim) or size (a claim "
    "Ringleader creates)",
)
CHECKPOINT_CLAIM_OPTIONS_RULE = rule(
    "has(self.size) || (!has(self.storageClassName) && !has(self.accessModes))",
    "spec.checkpoint.storageClassName and spec.checkpoint.accessModes apply only with "
    "spec.checkpoint.size",
)
CHECKPOINT_IMMUTABLE_RULE = rule(
    "self == oldSelf",
    "spec.checkpoint is immutable: a running job cannot move its checkpoints",
)


class CheckpointSpec(_Model):
    """The volume where workers keep checkpoints; a restarted worker resumes from the newest."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                CHECKPOINT_SOURCE_RULE,
                CHECKPOINT_CLAIM_OPTIONS_RULE,
                CHECKPOINT_IMMUTABLE_RULE,
            ]
        }
    )

    claim_name: Name | None = None
    """An existing PersistentVolumeClaim to use (shared by all workers: ReadWriteMany)."""
    size: Quantity | None = None
    """Size of a PersistentVolumeClaim that Ringleader creates and deletes with the job."""
    storage_class_name: Name | None = None
    """Storage class of the claim Ringleader creates; the cluster default when unset."""
    access_modes: (
        Annotated[
            list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]],
            Field(min_length=1, max_length=3),
        ]
        | None
    ) = None
    """Access modes of the claim Ringleader creates; ReadWriteMany when unset."""
    mount_path: Annotated[str, StringConstraints(pattern=r"^/", max_length=1024)] = (
        c.DEFAULT_CHECKPOINT_DIR
    )
    """Where the volume is mounted in every worker container."""
    keep: int = Field(default=c.DEFAULT_CHECKPOINT_KEEP, ge=1, le=1000)
    """How many of the newest checkpoints the trainer keeps."""

    @model_validator(mode="after")
    def _check_source(self) -> CheckpointSpec:
        # The CEL rules above, for manifests checked outside a cluster.
        if (self.claim_name is None) == (self.size is None):
            raise ValueError(str(CHECKPOINT_SOURCE_RULE["message"]))
        if self.size is None and (self.storage_class_name or self.access_modes):
            raise ValueError(str(CHECKPOINT_CLAIM_OPTIONS_RULE["message"]))
        return self


FailureClass = Literal[
    "UserError", "OutOfMemory", "NodeLost", "Communication", "Preempted", "Hang", "Unknown"
]


class FailureRule(_Model):
    """What to do when a worker fails in a given way; the first matching rule wins."""

    classes: Annotated[list[FailureClass], Field(max_length=7)] | None = None
    """Failure classes this rule matches; with exitCodes, a failure must match both."""
    exit_codes: (
        Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(max_length=64)] | None
    ) = None
    """Container exit codes this rule matches; a rule with no matcher matches every failure."""
    action: Literal["RestartWorker", "RestartGang", "FailJob"]
    """RestartWorker replaces the failed pod only; RestartGang restarts every worker."""
    count_towards_max_restarts: bool = True
    """False for failures that are not the job's fault (preemption, lost nodes)."""


class HangDetection(_Model):
    """When a running job counts as hung: its step has not moved for
    max(minSeconds, stepTimeMultiple x the recent time per step)."""

    enabled: bool = True
    min_seconds: int = Field(default=c.DEFAULT_HANG_MIN_SECONDS, ge=1, le=86400)
    """Never sooner than this: loading data or the first step may take long."""
    step_time_multiple: int = Field(default=c.DEFAULT_HANG_STEP_MULTIPLE, ge=2, le=10000)
    """How many recent step times without a new step make a hang."""


class FailurePolicy(_Model):
    """How many restarts a job gets, and per failure class, which kind."""

    max_restarts: int = Field(default=c.DEFAULT_MAX_RESTARTS, ge=0, le=10000)
    """Restarts (counted ones) after which the job fails."""
    rules: Annotated[list[FailureRule], Field(max_length=32)] | None = None
    """Checked in order; without a match a failed worker is replaced in place (a hang restarts
    the gang); Preempted and NodeLost do not count towards maxRestarts, the rest do."""
    hang_detection: HangDetection | None = None
    """A stalled step counter is a failure of class Hang (on by default)."""
    in_place_timeout_seconds: int = Field(
        default=c.DEFAULT_IN_PLACE_TIMEOUT_SECONDS, ge=5, le=86400
    )
    """After a worker is replaced in place: how long every worker may run without completing a
    step before the whole gang restarts instead."""


class NetworkingSpec(_Model):
    """How workers talk to each other."""

    shm_size: Quantity = c.DEFAULT_SHM_SIZE
    """Size of the memory-backed /dev/shm (NCCL and DataLoader workers need more than 64Mi)."""
    host_network: bool = False
    """Run workers in the node's network namespace (for RDMA and the fastest NICs)."""
    socket_ifname: Annotated[str, StringConstraints(max_length=256)] | None = None
    """Network interface for NCCL and gloo (sets NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME)."""


QUEUE_RULE = rule(
    "!has(self.queueName) || (has(self.schedulerName) && self.schedulerName == 'volcano')",
    "spec.scheduling.queueName is a Volcano queue: it needs spec.scheduling.schedulerName: volcano",
    ".queueName",
)


class SchedulingSpec(_Model):
    """Where and how worker pods are scheduled."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [QUEUE_RULE]})

    gang: bool = False
    """Bind the needed workers all together or none, through a Volcano or coscheduling PodGroup."""
    scheduler_name: Name | None = None
    """Scheduler for the worker pods; overrides the template's."""
    queue_name: Name | None = None
    """Volcano queue of the workers (needs schedulerName: volcano)."""
    priority_class_name: Name | None = None
    """PriorityClass of the worker pods; overrides the template's."""
    startup_timeout_seconds: int | None = Field(default=None, ge=1)
    """Fail the job (StartupTimeout) when a worker waits this long to run while too few run."""

    @model_validator(mode="after")
    def _check_queue(self) -> SchedulingSpec:
        # The CEL rule above, for manifests checked outside a cluster.
        if self.queue_name is not None and self.scheduler_name != c.VOLCANO_SCHEDULER:
            raise ValueError(str(QUEUE_RULE["message"]))
        return self


class RunPolicy(_Model):
    """The job's life cycle."""

    suspend: bool = False
    """True removes every pod (the checkpoint volume stays); false resumes from a checkpoint."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Seconds the job may run, counted from its start, before it fails with DeadlineExceeded."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Seconds after success or failure before the job and all it made are deleted."""


REPLICAS_IN_RANGE_RULE = rule(
    "!has(self.elastic) || (self.elastic.minReplicas <= self.replicas "
    "&& self.replicas <= self.elastic.maxReplicas)",
    "spec.replicas must be between spec.elastic.minReplicas and spec.elastic.maxReplicas",
    ".replicas",
)
ELASTIC_PRESENCE_RULE = rule(
    "has(self.elastic) == has(oldSelf.elastic)",
    "spec.elastic cannot be added or removed after creation",
    ".elastic",
)
CHECKPOINT_PRESENCE_RULE = rule(
    "has(self.checkpoint) == has(oldSelf.checkpoint)",
    "spec.checkpoint cannot be added or removed after creation",
    ".checkpoint",
)
TEMPLATE_IMMUTABLE_RULE = rule(
    "self.template == oldSelf.template"
    " || (has(self.runPolicy) && has(self.runPolicy.suspend) && self.runPolicy.suspend)"
    " || (has(oldSelf.runPolicy) && has(oldSelf.runPolicy.suspend) && oldSelf.runPolicy.suspend)",
    "spec.template can only change while the job is suspended (spec.runPolicy.suspend: true): "
    "running workers would not pick up the change",
    ".template",
)

SUSPENDED = "(has(self.runPolicy) && has(self.runPolicy.suspend) && self.runPolicy.suspend)"
WAS_SUSPENDED = (
    "(has(oldSelf.runPolicy) && has(oldSelf.runPolicy.suspend) && oldSelf.runPolicy.suspend)"
)
GANG_IMMUTABLE_RULE = rule(
    "((has(self.scheduling) && self.scheduling.gang)"
    " == (has(oldSelf.scheduling) && oldSelf.scheduling.gang)"
    " && (has(self.scheduling) && has(self.scheduling.schedulerName)"
    " ? self.scheduling.schedulerName : '')"
    " == (has(oldSelf.scheduling) && has(oldSelf.scheduling.schedulerName)"
    " ? oldSelf.scheduling.schedulerName : ''))"
    f" || {SUSPENDED} || {WAS_SUSPENDED}",
    "spec.scheduling.gang and spec.scheduling.schedulerName can only change while the job is "
    "suspended (spec.runPolicy.suspend: true): running workers cannot change scheduler or gang",
    ".scheduling",
)


class DistributedTrainingJobSpec(_Model):
    """The desired state of a distributed training job."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                REPLICAS_IN_RANGE_RULE,
                ELASTIC_PRESENCE_RULE,
                CHECKPOINT_PRESENCE_RULE,
                TEMPLATE_IMMUTABLE_RULE,
                GANG_IMMUTABLE_RULE,
            ]
        }
    )

    replicas: int = Field(ge=1, le=10000)
    """Desired number of worker pods (the /scale subresource sets it: kubectl scale, HPA)."""
    elastic: ElasticPolicy | None = None
    """Makes the job elastic; absent, it always runs with exactly `replicas` workers."""
    nproc_per_node: NprocPerNode = "auto"
    """Processes per worker pod: 'auto' is the pod's nvidia.com/gpu limit (1 without GPUs)."""
    template: PodTemplate
    """The worker pod template; its first container runs the trainer."""
    checkpoint: CheckpointSpec | None = None
    """Checkpoint volume; without one, checkpoints survive process restarts but not pod loss."""
    failure_policy: FailurePolicy | None = None
    """Restart rules; 10 counted gang restarts when unset."""
    networking: NetworkingSpec | None = None
    """Shared memory and network settings for NCCL."""
    scheduling: SchedulingSpec | None = None
    """Scheduler, queue and priority of the workers."""
    run_policy: RunPolicy | None = None
    """Suspension, deadline and clean-up."""

    def fewest_workers(self) -> int:
        """Fewest workers the job trains with: all of them, or an elastic job's minReplicas."""
        return self.elastic.min_replicas if self.elastic else self.replicas

    @model_validator(mode="after")
    def _check_ranges(self) -> DistributedTrainingJobSpec:
        # The CEL rules above, for manifests checked outside a cluster.
        if self.elastic is not None:
            lo, hi = self.elastic.min_replicas, self.elastic.max_replicas
            if lo > hi:
                raise ValueError(str(ELASTIC_RANGE_RULE["message"]))
            if not lo <= self.replicas <= hi:
                raise ValueError(str(REPLICAS_IN_RANGE_RULE["message"]))
        return self


class Condition(_Model):
    """One aspect of the job's state, in the shape of metav1.Condition."""

    type: Annotated[str, StringConstraints(max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    message: Annotated[str, StringConstraints(max_length=32768)] | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class Progress(_Model):
    """Training progress as rank 0 last reported it."""

    step: int | None = Field(default=None, ge=0)
    epoch: int | None = Field(default=None, ge=0)
    loss: float | None = None
    samples_per_second: float | None = None
    world_size: int | None = Field(default=None, ge=1)
    """Processes that trained the reported step: the group's size as the trainer sees it."""
    updated_at: datetime | None = None


class CheckpointStatus(_Model):
    """The newest valid checkpoint."""

    step: int | None = Field(default=None, ge=0)
    path: str | None = None
    time: datetime | None = None


class LastFailure(_Model):
    """The newest worker failure the operator acted on."""

    failure_class: FailureClass = Field(alias="class")
    """Why the worker failed, as classified from what Kubernetes and the trainer report."""
    pod: str
    pod_uid: str | None = Field(default=None, alias="podUID")
    """The failed pod's uid: a failure is acted on once, however often the loop runs."""
    exit_code: int | None = None
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    message: Annotated[str, StringConstraints(max_length=4096)] | None = None
    action: Literal["RestartWorker", "RestartGang", "FailJob"] | None = None
    """What the failure policy decided."""
    time: datetime | None = None
    steps_lost: int | None = Field(default=None, ge=0)
    """Steps trained after the newest checkpoint, to be trained again after the restart."""
    in_a_row: int | None = Field(default=None, ge=1)
    """Failures in a row with no checkpoint committed in between; gang restarts back off."""


class HangReport(_Model):
    """A hang the operator detected and the reconcile loop has yet to act on."""

    step: int = Field(ge=0)
    """The step the job is stuck after."""
    stalled_seconds: int = Field(ge=0)
    stalled_pods: Annotated[list[str], Field(max_length=64)] | None = None
    """Workers whose own last step is the oldest (or that did not answer)."""
    detected_at: datetime


Phase = Literal[
    "Pending", "Starting", "Running", "Resizing", "Restarting", "Suspended", "Succeeded", "Failed"
]


class DistributedTrainingJobStatus(_Model):
    """The observed state of a distributed training job, written by the operator only."""

    phase: Phase | None = None
    replicas: int | None = Field(default=None, ge=0)
    """Worker pods that exist and are not finished (the /scale subresource reads it)."""
    ready_replicas: int | None = Field(default=None, ge=0)
    world_size: int | None = Field(default=None, ge=0)
    """Processes in the training group: ready workers times processes per worker."""
    workers: str | None = None
    """Ready over desired workers, e.g. "3/4" (the WORKERS column)."""
    selector: str | None = None
    """Label selector of the worker pods (the /scale subresource and HPAs read it)."""
    restarts: int | None = Field(default=None, ge=0)
    """Restarts so far that count towards failurePolicy.maxRestarts."""
    restarts_by_class: (
        Annotated[dict[str, Annotated[int, Field(ge=0)]], Field(max_length=7)] | None
    ) = None
    """Every restart so far, counted towards maxRestarts or not, by failure class."""
    last_failure: LastFailure | None = None
    hang: HangReport | None = None
    """Set by the progress watcher when the step counter stalls; cleared by the restart."""
    restart_attempt: int | None = Field(default=None, ge=0)
    """Generation of the worker gang; every child carries it in a label."""
    observed_generation: int | None = Field(default=None, ge=0)
    progress: Progress | None = None
    checkpoint: CheckpointStatus | None = None
    conditions: Annotated[list[Condition], Field(max_length=16)] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None


class ObjectMeta(_Model):
    """The parts of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None


class DistributedTrainingJob(_Model):
    """A distributed PyTorch training job: a gang of workers, a rendezvous store, a volume."""

    api_version: Literal["ringleader.dev/v1alpha1"] = "ringleader.dev/v1alpha1"
    kind: Literal["DistributedTrainingJob"] = "DistributedTrainingJob"
    metadata: ObjectMeta
    spec: DistributedTrainingJobSpec
    status: DistributedTrainingJobStatus | None = None


# --- Rules that crdgen adds to the metadata and to the core PodTemplateSpec schema.

NAME_LENGTH_RULE = rule(
    f"size(self.metadata.name) <= {c.MAX_JOB_NAME_LENGTH}",
    f"metadata.name must be at most {c.MAX_JOB_NAME_LENGTH} characters: it prefixes the host "
    "names of the job's pods",
)
NAME_DNS_RULE = rule(
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "metadata.name must start with a lowercase letter and contain only lowercase letters, digits "
    "and '-': it names the job's Services",
)
RESERVED_ENV_RULE: JsonDict = {
    "rule": "!(self.name in [" + ", ".join(f"'{n}'" for n in sorted(c.ENV_CONTRACT)) + "])",
    "messageExpression": "'spec.template.spec.containers[].env: ' + self.name + ' is set by "
    "Ringleader for every worker (the env contract) and cannot be set in the template'",
    "message": "spec.template.spec.containers[].env: this name is set by Ringleader for every "
    "worker (the env contract) and cannot be set in the template",
    "fieldPath": ".name",
}
RESTART_POLICY_RULE = rule(
    "!has(self.restartPolicy) || self.restartPolicy == 'Never'",
    "spec.template.spec.restartPolicy must be Never or unset: Ringleader restarts workers itself",
    ".restartPolicy",
)
RESERVED_VOLUME_RULE = rule(
    f"!self.name.startsWith('{c.RESERVED_VOLUME_PREFIX}')",
    f"spec.template.spec.volumes: names starting with '{c.RESERVED_VOLUME_PREFIX}' are reserved "
    "for the volumes Ringleader adds",
    ".name",
)
