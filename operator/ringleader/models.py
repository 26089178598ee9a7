"""The DistributedTrainingJob API as pydantic models: the single source of truth for the CRD.

Field names are snake_case in Python and camelCase on the wire (aliases). The CEL rules live next
to the fields they guard, so `crdgen` emits them and the tests can read them from one place. The
status models are in statusmodels.py, what all models share in modelbase.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ringleader import constants as c
from ringleader.constants import FailureAction, FailureClass, Framework, StragglerAction
from ringleader.modelbase import (
    ApiModel,
    JsonDict,
    Name,
    PodTemplate,
    Quantity,
    first_error,
    rule,
)
from ringleader.statusmodels import DistributedTrainingJobStatus

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

ELASTIC_RANGE_RULE = rule(
    "self.minReplicas <= self.maxReplicas",
    "spec.elastic.minReplicas must be less than or equal to spec.elastic.maxReplicas",
    ".minReplicas",
)
ELASTIC_IMMUTABLE_RULE = rule(
    "self == oldSelf",
    "spec.elastic is immutable: every worker's rendezvous was configured with min:max at start",
)


class ElasticPolicy(ApiModel):
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


class CheckpointSpec(ApiModel):
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


class FailureRule(ApiModel):
    """What to do when a worker fails in a given way; the first matching rule wins."""

    classes: Annotated[list[FailureClass], Field(max_length=7)] | None = None
    """Failure classes this rule matches; with exitCodes, a failure must match both."""
    exit_codes: (
        Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(max_length=64)] | None
    ) = None
    """Container exit codes this rule matches; a rule with no matcher matches every failure."""
    action: FailureAction
    """RestartWorker replaces the failed pod only; RestartGang restarts every worker."""
    count_towards_max_restarts: bool = True
    """False for failures that are not the job's fault (preemption, lost nodes)."""


class HangDetection(ApiModel):
    """When a running job counts as hung: its step has not moved for
    max(minSeconds, stepTimeMultiple x the recent time per step)."""

    enabled: bool = True
    min_seconds: int = Field(default=c.DEFAULT_HANG_MIN_SECONDS, ge=1, le=86400)
    """Never sooner than this: loading data or the first step may take long."""
    step_time_multiple: int = Field(default=c.DEFAULT_HANG_STEP_MULTIPLE, ge=2, le=10000)
    """How many recent step times without a new step make a hang."""


class StragglerDetection(ApiModel):
    """When a worker counts as a straggler: its own work per step (waiting for its data and
    computing, not waiting for the others) is slowerByPercent above the median worker's for
    `steps` steps in a row, and 20 ms a step above it at least. Needs the workers' figures,
    which the built-in trainer reports."""

    enabled: bool = True
    slower_by_percent: int = Field(default=c.DEFAULT_STRAGGLER_SLOWER_BY_PERCENT, ge=10, le=10000)
    """How much slower than the median worker (50: one and a half times its time)."""
    steps: int = Field(default=c.DEFAULT_STRAGGLER_STEPS, ge=5, le=1000000)
    """For how many steps in a row."""
    action: StragglerAction = StragglerAction.REPORT
    """Report names it (status.stragglers, a Straggler condition and event); ReplacePod also
    deletes its pod, whose replacement and every later worker of the job avoid its node."""


class FailurePolicy(ApiModel):
    """How many restarts a job gets, and per failure class, which kind."""

    max_restarts: int = Field(default=c.DEFAULT_MAX_RESTARTS, ge=0, le=10000)
    """Restarts (counted ones) after which the job fails."""
    rules: Annotated[list[FailureRule], Field(max_length=32)] | None = None
    """Checked in order; without a match a failed worker is replaced in place (a hang restarts
    the gang); Preempted and NodeLost do not count towards maxRestarts, the rest do."""
    hang_detection: HangDetection | None = None
    """A stalled step counter is a failure of class Hang (on by default)."""
    straggler_detection: StragglerDetection | None = None
    """A worker that holds the others back is named in status (on by default)."""
    in_place_timeout_seconds: int = Field(
        default=c.DEFAULT_IN_PLACE_TIMEOUT_SECONDS, ge=5, le=86400
    )
    """After a worker is replaced in place: how long every worker may run without completing a
    step before the whole gang restarts instead."""


class PreflightCheck(ApiModel):
    """Before its first step, each group the workers form measures its all-reduce bandwidth and
    every link of a ring through its ranks; a worker or link far below the others is named in
    status (status.preflight, condition PreflightPassed, an event). The built-in trainer does
    this; a user's own script does not."""

    megabytes: int = Field(default=c.DEFAULT_PREFLIGHT_MEGABYTES, ge=1, le=4096)
    """Size of what each measurement sends (a few transfers each)."""
    slow_link_percent: int = Field(default=c.DEFAULT_SLOW_LINK_PERCENT, ge=1, le=99)
    """A link below this percent of the median link of its kind (inside a pod, between pods)
    is slow; a worker both of whose links are slow has a slow network."""


class NetworkingSpec(ApiModel):
    """How workers talk to each other."""

    shm_size: Quantity = c.DEFAULT_SHM_SIZE
    """Size of the memory-backed /dev/shm (NCCL and DataLoader workers need more than 64Mi)."""
    host_network: bool = False
    """Run workers in the node's network namespace (for RDMA and the fastest NICs)."""
    socket_ifname: Annotated[str, StringConstraints(max_length=256)] | None = None
    """Network interface for NCCL and gloo (sets NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME)."""
    preflight: PreflightCheck | None = None
    """Measure the network before the first step of each group (off when absent)."""


QUEUE_RULE = rule(
    "!has(self.queueName) || (has(self.schedulerName) && self.schedulerName == 'volcano')",
    "spec.scheduling.queueName is a Volcano queue: it needs spec.scheduling.schedulerName: volcano",
    ".queueName",
)


class SchedulingSpec(ApiModel):
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


class RunPolicy(ApiModel):
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

# What a tf.distribute group cannot do: it has a fixed size and no process agent (torchrun's),
# so no elastic range, no in-place replacement of one worker and no preflight (run by the agent).
TENSORFLOW = "(has(self.framework) && self.framework == 'tensorflow')"
TENSORFLOW_NOT_ELASTIC_RULE = rule(
    f"!{TENSORFLOW} || !has(self.elastic)",
    "spec.elastic needs spec.framework pytorch: a TensorFlow group has a fixed size",
    ".elastic",
)
TENSORFLOW_ONE_PROCESS_RULE = rule(
    f"!{TENSORFLOW} || !has(self.nprocPerNode) || type(self.nprocPerNode) != int"
    " || self.nprocPerNode == 1",
    "spec.nprocPerNode must be 'auto' or 1 with spec.framework tensorflow: one TensorFlow "
    "process per pod uses all of the pod's GPUs",
    ".nprocPerNode",
)
TENSORFLOW_NO_PREFLIGHT_RULE = rule(
    f"!{TENSORFLOW} || !has(self.networking) || !has(self.networking.preflight)",
    "spec.networking.preflight needs spec.framework pytorch: torchrun's agent runs it",
    ".networking.preflight",
)
TENSORFLOW_RESTARTS_WHOLE_RULE = rule(
    f"!{TENSORFLOW} || !has(self.failurePolicy) || !has(self.failurePolicy.rules)"
    " || !self.failurePolicy.rules.exists(r, r.action == 'RestartWorker')",
    "spec.failurePolicy.rules[].action RestartWorker needs spec.framework pytorch: a "
    "TensorFlow group cannot take in a replaced worker, it restarts whole (RestartGang)",
    ".failurePolicy.rules",
)
TENSORFLOW_RULES = (
    TENSORFLOW_NOT_ELASTIC_RULE,
    TENSORFLOW_ONE_PROCESS_RULE,
    TENSORFLOW_NO_PREFLIGHT_RULE,
    TENSORFLOW_RESTARTS_WHOLE_RULE,
)
FRAMEWORK_IMMUTABLE_RULE = rule(
    "self == oldSelf", "spec.framework is immutable: the workers were started for one framework"
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


class DistributedTrainingJobSpec(ApiModel):
    """The desired state of a distributed training job."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                REPLICAS_IN_RANGE_RULE,
                ELASTIC_PRESENCE_RULE,
                CHECKPOINT_PRESENCE_RULE,
                TEMPLATE_IMMUTABLE_RULE,
                GANG_IMMUTABLE_RULE,
                *TENSORFLOW_RULES,
            ]
        }
    )

    framework: Framework = Field(
        default=Framework.PYTORCH,
        json_schema_extra={"x-kubernetes-validations": [FRAMEWORK_IMMUTABLE_RULE]},
    )
    """What the workers run: pytorch (torchrun's contract) or tensorflow (TF_CONFIG; the group
    restarts whole on any worker's failure)."""
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
        if self.framework == Framework.TENSORFLOW and (broken := self._tensorflow_rule_broken()):
            raise ValueError(str(broken["message"]))
        return self

    def _tensorflow_rule_broken(self) -> JsonDict | None:
        """The first of TENSORFLOW_RULES this spec breaks (they are CEL for the API server)."""
        rules = (self.failure_policy.rules if self.failure_policy else None) or []
        checks = (
            (TENSORFLOW_NOT_ELASTIC_RULE, self.elastic is not None),
            (TENSORFLOW_ONE_PROCESS_RULE, self.nproc_per_node not in ("auto", 1)),
            (TENSORFLOW_NO_PREFLIGHT_RULE, bool(self.networking and self.networking.preflight)),
            (
                TENSORFLOW_RESTARTS_WHOLE_RULE,
                any(r.action == FailureAction.RESTART_WORKER for r in rules),
            ),
        )
        return next((rule for rule, broken in checks if broken), None)


class ObjectMeta(ApiModel):
    """The parts of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None  # kueue.x-k8s.io/queue-name (queueing.py)


class DistributedTrainingJob(ApiModel):
    """A distributed PyTorch training job: a gang of workers, a rendezvous store, a volume."""

    api_version: Literal["ringleader.dev/v1alpha1"] = "ringleader.dev/v1alpha1"
    kind: Literal["DistributedTrainingJob"] = "DistributedTrainingJob"
    metadata: ObjectMeta
    spec: DistributedTrainingJobSpec
    status: DistributedTrainingJobStatus | None = None


class InvalidJob(ValueError):
    """A job body the models refuse: what a CRD from an older version, or an API server without
    the CEL rules, let through. `field` is the first offending field, as in the manifest."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message = field, message


def parse_job(body: dict[str, Any]) -> DistributedTrainingJob:
    """The job (spec and status) as the models, parsed once per reconcile; InvalidJob naming
    the field when the body does not fit them."""
    fields = {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
    fields["status"] = body.get("status") or None
    try:
        return DistributedTrainingJob.model_validate(fields)
    except ValidationError as error:
        raise InvalidJob(*first_error(error)) from error
