"""Names shared across the operator: API group, labels, condition reasons, the env contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "ringleader.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "DistributedTrainingJob"
PLURAL: Final = "distributedtrainingjobs"
SHORT_NAME: Final = "dtj"

# --- The env contract: what the operator sets in every worker container and the trainer reads.
# The trainer keeps its own copy of these names (ringleader_client.contract); a unit test checks
# that both sides agree, since the two packages ship in different images.

# Standard PyTorch names (torch.distributed / torchrun).
ENV_MASTER_ADDR: Final = "MASTER_ADDR"  # DNS name of worker 0 (rank 0 serves the store)
ENV_MASTER_PORT: Final = "MASTER_PORT"
ENV_WORLD_SIZE: Final = "WORLD_SIZE"  # processes in the group at launch: replicas x nprocPerNode
ENV_RANK: Final = "RANK"  # first global rank of this pod at launch: replica index x nprocPerNode

# torch.distributed.run reads PET_<FLAG> for each of its command-line flags.
ENV_PET_NNODES: Final = "PET_NNODES"  # "min:max" worker pods
ENV_PET_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
ENV_PET_RDZV_BACKEND: Final = "PET_RDZV_BACKEND"  # always c10d
ENV_PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"  # host:port of the rendezvous
ENV_PET_RDZV_ID: Final = "PET_RDZV_ID"  # unique per job and restart attempt
ENV_PET_RDZV_CONF: Final = "PET_RDZV_CONF"  # is_host=false: the rendezvous runs in its own pod
ENV_PET_MAX_RESTARTS: Final = "PET_MAX_RESTARTS"  # in-place process restarts by the agent
# Surviving agents must not reuse their first round's bootstrap store when a new agent joins.
ENV_DISABLE_SHARED_RDZV_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"

# Ringleader's own names.
ENV_JOB_NAME: Final = "RINGLEADER_JOB_NAME"
ENV_NAMESPACE: Final = "RINGLEADER_NAMESPACE"
ENV_POD_NAME: Final = "RINGLEADER_POD_NAME"
ENV_REPLICA_INDEX: Final = "RINGLEADER_REPLICA_INDEX"
ENV_RESTART_ATTEMPT: Final = "RINGLEADER_RESTART_ATTEMPT"
ENV_CHECKPOINT_DIR: Final = "RINGLEADER_CHECKPOINT_DIR"
ENV_CHECKPOINT_KEEP: Final = "RINGLEADER_CHECKPOINT_KEEP"
ENV_PROGRESS_PORT: Final = "RINGLEADER_PROGRESS_PORT"  # the trainer serves /progress and /metrics
# Set only when spec.networking.preflight asks for one: the size each measurement sends.
ENV_PREFLIGHT_MEGABYTES: Final = "RINGLEADER_PREFLIGHT_MEGABYTES"

ENV_CONTRACT: Final = frozenset(
    {
        ENV_MASTER_ADDR,
        ENV_MASTER_PORT,
        ENV_WORLD_SIZE,
        ENV_RANK,
        ENV_PET_NNODES,
        ENV_PET_NPROC_PER_NODE,
        ENV_PET_RDZV_BACKEND,
        ENV_PET_RDZV_ENDPOINT,
        ENV_PET_RDZV_ID,
        ENV_PET_RDZV_CONF,
        ENV_PET_MAX_RESTARTS,
        ENV_DISABLE_SHARED_RDZV_STORE,
        ENV_JOB_NAME,
        ENV_NAMESPACE,
        ENV_POD_NAME,
        ENV_REPLICA_INDEX,
        ENV_RESTART_ATTEMPT,
        ENV_CHECKPOINT_DIR,
        ENV_CHECKPOINT_KEEP,
        ENV_PROGRESS_PORT,
        ENV_PREFLIGHT_MEGABYTES,
    }
)

# TensorFlow's name (tf.distribute's cluster resolver), set for spec.framework tensorflow only and
# read by TensorFlow, not by the client library: the cluster's workers (stable DNS names, one fixed
# port) and this worker's task index, as Kubeflow's TFJob sets it.
ENV_TF_CONFIG: Final = "TF_CONFIG"
TF_WORKER_PORT: Final = 2222  # the port TFJob gives every worker's gRPC server

RENDEZVOUS_PORT: Final = 29400
# MASTER_PORT: where a script run without torchrun finds the group's store, served by rank 0
# (worker 0's pod, MASTER_ADDR) as under Kubeflow's PyTorchJob, which uses the same port.
# torchrun and the built-in trainer's agent set MASTER_ADDR and MASTER_PORT per process instead.
RANK_0_STORE_PORT: Final = 23456
PROGRESS_PORT: Final = 29500
RENDEZVOUS_PORT_NAME: Final = "rdzv"

# --- Labels and annotations the operator puts on every child. The selectors below are what the
# reconcile loop lists by, so a child without these labels is invisible to it.
LABEL_JOB_NAME: Final = f"{GROUP}/job-name"
LABEL_ROLE: Final = f"{GROUP}/role"  # one of the ROLE_* values
LABEL_REPLICA_INDEX: Final = f"{GROUP}/replica-index"
LABEL_RESTART_ATTEMPT: Final = f"{GROUP}/restart-attempt"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "ringleader"
ROLE_WORKER: Final = "worker"
ROLE_RENDEZVOUS: Final = "rendezvous"  # the job's rendezvous pod and its Service
ROLE_GANG: Final = "gang"  # the job's PodGroup
ROLE_QUEUE: Final = "queue"  # the job's Kueue Workload
KUEUE_API_VERSION: Final = "kueue.x-k8s.io/v1beta2"  # Workloads, ResourceFlavors

# --- Child names are derived from the job name, so the job name is bounded (see models.py).
MAX_JOB_NAME_LENGTH: Final = 45
# A worker's pod is <job>-worker-<index>-a<attempt>-<token> (a name per incarnation), its host
# name <job>-worker-<index> (stable). The longest job name leaves the host name within a DNS
# label's 63 characters for up to 10000 replicas; the pod name has 253.
WORKER_SUFFIX: Final = "worker"
WORKERS_SERVICE_SUFFIX: Final = "workers"  # headless Service that is every worker's subdomain
# The rendezvous: one pod per job serving a torch.distributed TCPStore that every worker's elastic
# agent meets at (c10d rendezvous), and its Service. Named <job>-rdzv, torch's own abbreviation
# (PET_RDZV_ENDPOINT, --rdzv-backend); in code and messages it is "the rendezvous".
RENDEZVOUS_SUFFIX: Final = "rdzv"
CHECKPOINT_PVC_SUFFIX: Final = "checkpoint"
SHM_VOLUME: Final = "ringleader-shm"
CHECKPOINT_VOLUME: Final = "ringleader-checkpoint"
RESERVED_VOLUME_PREFIX: Final = "ringleader-"
GPU_RESOURCE: Final = "nvidia.com/gpu"

# --- Phases, failure classes and failure actions: each vocabulary is defined once, here; the
# models, the CRD's enums, the metrics and the failure policy's table all derive from these.


class Phase(StrEnum):
    """The job's phase; every phase but Pending and Starting has a condition of its name."""

    # Exactly one condition is True, or none while Pending or Starting.

    PENDING = "Pending"
    QUEUED = "Queued"  # Kueue has not admitted it (kueue.x-k8s.io/queue-name), or evicted it
    STARTING = "Starting"
    RUNNING = "Running"
    RESIZING = "Resizing"  # an elastic group re-forming at another size
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES: Final = frozenset({Phase.SUCCEEDED, Phase.FAILED})
# Phases whose workers may be training: the progress poller asks them for their progress.
ACTIVE_PHASES: Final = frozenset({Phase.STARTING, Phase.RUNNING, Phase.RESIZING, Phase.RESTARTING})
# Phases in which a stalled step counter is a hang.
TRAINING_PHASES: Final = frozenset({Phase.RUNNING, Phase.RESIZING})
CONDITION_TYPES: Final = (
    Phase.RUNNING,
    Phase.RESIZING,
    Phase.RESTARTING,
    Phase.QUEUED,
    Phase.SUSPENDED,
    Phase.SUCCEEDED,
    Phase.FAILED,
)


class FailureClass(StrEnum):
    """Why a worker failed, as classified from what Kubernetes and the trainer report."""

    USER_ERROR = "UserError"
    OUT_OF_MEMORY = "OutOfMemory"
    NODE_LOST = "NodeLost"
    COMMUNICATION = "Communication"
    PREEMPTED = "Preempted"
    HANG = "Hang"
    UNKNOWN = "Unknown"


class Framework(StrEnum):
    """What the workers run: it decides their env contract and the default failure action."""

    PYTORCH = "pytorch"  # torchrun: rendezvous, in-place and elastic recovery
    TENSORFLOW = "tensorflow"  # tf.distribute with TF_CONFIG: a fixed group, restarted whole


class StragglerAction(StrEnum):
    """What the operator does about a straggler."""

    REPORT = "Report"  # name it in status and an event
    REPLACE_POD = "ReplacePod"  # and replace its pod, keeping the job's workers off its node


class FailureAction(StrEnum):
    """What the failure policy does about a failed worker, mildest first."""

    RESTART_WORKER = "RestartWorker"  # replace the failed pod; the others re-form with it
    RESTART_GANG = "RestartGang"  # every worker, as a new restart attempt
    FAIL_JOB = "FailJob"


# Beside the phases' conditions: whether the workers report progress (status.reporting).
CONDITION_PROGRESS_REPORTED: Final = "ProgressReported"
REASON_REPORTED: Final = "Reported"
REASON_NOT_REPORTED: Final = "NotReported"
# And once a group measured its network before its first step (spec.networking.preflight):
# whether every link was within the job's margin of the median link of its kind.
CONDITION_PREFLIGHT_PASSED: Final = "PreflightPassed"
REASON_NETWORK_AS_EXPECTED: Final = "NetworkAsExpected"
REASON_SLOW_WORKER_NETWORK: Final = "SlowWorkerNetwork"
REASON_SLOW_LINK: Final = "SlowLink"
DEFAULT_PREFLIGHT_MEGABYTES: Final = 64
DEFAULT_SLOW_LINK_PERCENT: Final = 50
# Beside them too, once the workers' figures were judged: whether a worker holds the others back
# (status.stragglers); a Straggler event names each one when it is found.
CONDITION_STRAGGLER: Final = "Straggler"
REASON_SLOW_WORKER: Final = "SlowWorker"
REASON_NO_SLOW_WORKER: Final = "NoSlowWorker"
REASON_STRAGGLER: Final = "Straggler"  # the event
REASON_STRAGGLER_REPLACED: Final = "StragglerReplaced"  # the event when its pod is replaced
# How long the workers may run without a progress endpoint answering before status says that
# they report none (a script without the client library), rather than that none came yet.
NOT_REPORTED_AFTER_SECONDS: Final = 60

# Condition reasons are CamelCase.
REASON_WAITING_FOR_WORKERS: Final = "WaitingForWorkers"
REASON_WORKERS_STARTING: Final = "WorkersStarting"
REASON_ALL_WORKERS_RUNNING: Final = "AllWorkersRunning"
REASON_RUNNING_BELOW_DESIRED: Final = "RunningBelowDesiredReplicas"
REASON_WORKER_FAILED: Final = "WorkerFailed"
REASON_HANG_DETECTED: Final = "HangDetected"
REASON_RESTART_IN_PROGRESS: Final = "RestartInProgress"
REASON_SUSPENDED: Final = "JobSuspended"
REASON_WAITING_FOR_ADMISSION: Final = "WaitingForAdmission"  # Kueue reserves no quota yet
REASON_EVICTED: Final = "EvictedByKueue"  # preempted or evicted: stopping, then queued again
REASON_RESUMED: Final = "JobResumed"
REASON_SUCCEEDED: Final = "AllWorkersSucceeded"
REASON_ALREADY_FINISHED: Final = "JobFinished"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_MAX_RESTARTS_EXCEEDED: Final = "MaxRestartsExceeded"
REASON_FAILED_BY_POLICY: Final = "FailedByPolicy"
REASON_STARTUP_TIMEOUT: Final = "StartupTimeout"
REASON_GANG_UNAVAILABLE: Final = "GangSchedulingUnavailable"
REASON_INVALID_JOB: Final = "InvalidJob"
REASON_CREATION_REFUSED: Final = "CreationRefused"
REASON_POD_FORCE_DELETED: Final = "PodForceDeleted"
# Resizing, one word for one concept: a fixed-size job resizes by a gang restart at the new size
# (RestartingAtNewSize); an elastic group resizes in place (phase Resizing while it re-forms,
# a Resized event once it trains at the new size).
REASON_RESTARTING_AT_NEW_SIZE: Final = "RestartingAtNewSize"
REASON_RESIZING: Final = "GroupResizing"
REASON_RESIZED: Final = "Resized"

DEFAULT_CHECKPOINT_DIR: Final = "/checkpoints"
DEFAULT_CHECKPOINT_KEEP: Final = 3
DEFAULT_SHM_SIZE: Final = "2Gi"
DEFAULT_MAX_RESTARTS: Final = 10
# Long enough for a replacement pod to start and load a checkpoint on a busy cluster; the safety
# net for survivors that never re-form (hang detection needs a first step to learn the pace).
DEFAULT_IN_PLACE_TIMEOUT_SECONDS: Final = 300
DEFAULT_HANG_MIN_SECONDS: Final = 120
DEFAULT_HANG_STEP_MULTIPLE: Final = 20
# --- Stragglers: a worker whose own work per step (waiting for its data and computing, not
# waiting for the others) stays well above the group's median. By default 50 % above it for 50
# steps in a row, and 20 ms a step above it at least: on a busy node a few milliseconds of
# scheduling noise are a large share of a tiny step, and hold nobody back.
DEFAULT_STRAGGLER_SLOWER_BY_PERCENT: Final = 50
DEFAULT_STRAGGLER_STEPS: Final = 50
STRAGGLER_MIN_EXCESS_SECONDS: Final = 0.02
# Under action ReplacePod, the nodes a job's workers are kept off at most: a straggler that
# follows the job from node to node is slow for another reason, and is then only reported.
MAX_AVOIDED_NODES: Final = 4

# --- Node loss. Kubernetes gives every pod 300 s of tolerance for a NotReady or unreachable node
# before the taint manager deletes it; for a training gang that is 300 s of every other worker
# waiting in an all-reduce that cannot finish. The node lifecycle controller has already waited
# its grace period (40-50 s by default) before it taints the node, so 30 s more rides out a short
# kubelet or network hiccup and still replaces the lost workers within about a minute and a half.
NODE_LOSS_TAINTS: Final = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
NODE_LOSS_TOLERATION_SECONDS: Final = 30
# A pod whose node is lost never finishes terminating (no kubelet confirms it), which blocks a
# same-named replacement. Once its grace period is over and its node is still NotReady, Unknown
# or gone, the operator force-deletes it after this margin more: time for a kubelet that just came
# back to finish the deletion itself, and for the watches to catch up.
FORCE_DELETE_MARGIN_SECONDS: Final = 10
# How often a pod stuck terminating on a node that still looks Ready is looked at again, and how
# long a node's readiness, read for such a pod, is trusted.
STUCK_POD_RECHECK_SECONDS: Final = 15
NODE_READINESS_CACHE_SECONDS: Final = 5
# A deleted Node object's pods stay, Running and Ready as last reported, until the pod garbage
# collector deletes them 40 s or more later. The operator, told of the deletion by its node watch,
# force-deletes its own at once; it remembers a deleted node this long in case a reconcile of
# one of its jobs fails and must be retried.
DELETED_NODE_MEMORY_SECONDS: Final = 600

# --- Gang scheduling (spec.scheduling.gang; gang.py): how worker pods join a PodGroup.
VOLCANO_SCHEDULER: Final = "volcano"
VOLCANO_GROUP_ANNOTATION: Final = "scheduling.k8s.io/group-name"
VOLCANO_QUEUE_ANNOTATION: Final = "scheduling.volcano.sh/queue-name"
COSCHEDULING_GROUP_LABEL: Final = "scheduling.x-k8s.io/pod-group"
# How long discovery's answer (is a PodGroup API served?) is trusted (discovery.py).
DISCOVERY_CACHE_SECONDS: Final = 30
