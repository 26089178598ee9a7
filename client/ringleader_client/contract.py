"""The contract between a job's workers and the operator, workers' side: the env the operator
sets (read here) and the reports the workers give back (defined here), for the built-in trainer
and for users' own scripts alike.

Worker images do not ship the operator package, so the names are repeated on each side;
tests/trainer/test_contract.py checks both sides agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Final

# Set by the operator for the pod at launch, and by torchrun's agent again per process.
RANK: Final = "RANK"
WORLD_SIZE_NAME: Final = "WORLD_SIZE"
PET_NNODES: Final = "PET_NNODES"
PET_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
PET_RDZV_BACKEND: Final = "PET_RDZV_BACKEND"
PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"
PET_RDZV_ID: Final = "PET_RDZV_ID"
PET_RDZV_CONF: Final = "PET_RDZV_CONF"
PET_MAX_RESTARTS: Final = "PET_MAX_RESTARTS"
DISABLE_SHARED_RDZV_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
JOB_NAME: Final = "RINGLEADER_JOB_NAME"
POD_NAME: Final = "RINGLEADER_POD_NAME"
REPLICA_INDEX: Final = "RINGLEADER_REPLICA_INDEX"
RESTART_ATTEMPT: Final = "RINGLEADER_RESTART_ATTEMPT"
CHECKPOINT_DIR: Final = "RINGLEADER_CHECKPOINT_DIR"
CHECKPOINT_KEEP: Final = "RINGLEADER_CHECKPOINT_KEEP"
PROGRESS_PORT: Final = "RINGLEADER_PROGRESS_PORT"
PREFLIGHT_MEGABYTES_NAME: Final = "RINGLEADER_PREFLIGHT_MEGABYTES"  # set only when asked for

# Every name the trainer reads from the operator's env (the contract test checks this tuple).
READ_NAMES: Final = (
    RANK,
    WORLD_SIZE_NAME,
    PET_NNODES,
    PET_NPROC_PER_NODE,
    PET_RDZV_BACKEND,
    PET_RDZV_ENDPOINT,
    PET_RDZV_ID,
    PET_RDZV_CONF,
    PET_MAX_RESTARTS,
    DISABLE_SHARED_RDZV_STORE,
    JOB_NAME,
    POD_NAME,
    REPLICA_INDEX,
    RESTART_ATTEMPT,
    CHECKPOINT_DIR,
    CHECKPOINT_KEEP,
    PROGRESS_PORT,
    PREFLIGHT_MEGABYTES_NAME,
)

# Set by torch's elastic agent for each worker process, not by the operator: outside the contract.
AGENT_LOCAL_RANK: Final = "LOCAL_RANK"
AGENT_LOCAL_WORLD_SIZE: Final = "LOCAL_WORLD_SIZE"  # processes in this pod

DEFAULT_RDZV_PORT: Final = 29400
DEFAULT_PROGRESS_PORT: Final = 29500


@dataclass(frozen=True)
class LaunchEnv:
    """What one worker pod was told by the operator."""

    min_nodes: int
    max_nodes: int
    nproc_per_node: str
    rdzv_backend: str
    rdzv_endpoint: str
    rdzv_id: str
    rdzv_conf: str
    max_restarts: int
    job_name: str
    pod_name: str
    replica_index: int
    restart_attempt: int
    checkpoint_dir: str
    checkpoint_keep: int
    progress_port: int
    preflight_megabytes: int  # 0: no pre-flight


def parse_nnodes(value: str) -> tuple[int, int]:
    """Parse torchrun's nnodes syntax, "N" or "MIN:MAX"."""
    low, _, high = value.partition(":")
    lo, hi = int(low), int(high or low)
    if not 1 <= lo <= hi:
        raise ValueError(f"{PET_NNODES}={value!r}: need 1 <= min <= max")
    return lo, hi


def read_launch_env(env: dict[str, str] | None = None) -> LaunchEnv:
    """Read the launch settings from the env contract, with defaults for a single process."""
    e = dict(os.environ) if env is None else env
    lo, hi = parse_nnodes(e.get(PET_NNODES, "1"))
    return LaunchEnv(
        min_nodes=lo,
        max_nodes=hi,
        nproc_per_node=e.get(PET_NPROC_PER_NODE, "1"),
        rdzv_backend=e.get(PET_RDZV_BACKEND, "c10d"),
        rdzv_endpoint=e.get(PET_RDZV_ENDPOINT, f"localhost:{DEFAULT_RDZV_PORT}"),
        rdzv_id=e.get(PET_RDZV_ID, "ringleader"),
        rdzv_conf=e.get(PET_RDZV_CONF, "is_host=false"),
        max_restarts=int(e.get(PET_MAX_RESTARTS, "3")),
        job_name=e.get(JOB_NAME, "local"),
        pod_name=e.get(POD_NAME, "local-0"),
        replica_index=int(e.get(REPLICA_INDEX, "0")),
        restart_attempt=int(e.get(RESTART_ATTEMPT, "0")),
        checkpoint_dir=e.get(CHECKPOINT_DIR, "/checkpoints"),
        checkpoint_keep=int(e.get(CHECKPOINT_KEEP, "3")),
        progress_port=int(e.get(PROGRESS_PORT, str(DEFAULT_PROGRESS_PORT))),
        preflight_megabytes=int(e.get(PREFLIGHT_MEGABYTES_NAME, "0")),
    )


# --- What the trainer (or a script through this library) tells the operator: the progress
# document (served at /progress, left as the pod's termination message when it ends) and the
# failure verdict. The operator keeps its own copy (ringleader.reports); the contract tests check
# both sides agree and feed the real output through the operator's readers.


class TrainerState(str, Enum):  # noqa: UP042 - not StrEnum: scripts may run on Python 3.10
    """Where the trainer is. Only while Training does the step move; in every other state it
    stands still on purpose, which the operator must not take for a hang."""

    TRAINING = "Training"
    FINISHING = "Finishing"  # final checkpoint and evaluation
    STOPPING = "Stopping"  # checkpoint before a stop (SIGTERM, a group that re-forms)
    FINISHED = "Finished"
    STOPPED_HERE = "StoppedHere"  # stopped on this pod's own SIGTERM, checkpoint committed
    STOPPED_ELSEWHERE = "StoppedElsewhere"  # stopped because another pod was leaving


PROGRESS_PATH: Final = "/progress"
HEARTBEATS_PATH: Final = "/heartbeats"
# What the endpoint answers (404) before the first report.
NOT_YET_KEY: Final = "error"
NOT_YET: Final = "no progress yet"
# Keys of the progress document.
STEP: Final = "step"
STATE: Final = "state"
EPOCH: Final = "epoch"
LOSS: Final = "loss"
SAMPLES_PER_SECOND: Final = "samples_per_second"
SECONDS_PER_STEP: Final = "seconds_per_step"
WORLD_SIZE: Final = "world_size"
UPDATED_AT: Final = "updated_at"  # seconds since the epoch, right after the step
CHECKPOINT: Final = "checkpoint"  # {step, path, time}: the newest committed checkpoint
METRICS: Final = "metrics"  # a script's own figures by name, exported on /metrics (not read)
WORKERS: Final = "workers"  # every rank's step figures over a window (the built-in trainer)
PREFLIGHT: Final = "preflight"  # the group's network, measured before its first step
INCARNATION: Final = "incarnation"  # this process's first step, and the last one before it
PROGRESS_KEYS: Final = frozenset(
    {STEP, STATE, EPOCH, LOSS, SAMPLES_PER_SECOND, SECONDS_PER_STEP, WORLD_SIZE, UPDATED_AT}
    | {CHECKPOINT, WORKERS, PREFLIGHT, INCARNATION}
)
# Keys of `incarnation`: the step this process (global rank 0 of its group) trained first and
# when, and the newest step the job's progress document told of when the process started (the
# group before it: its last step's time and number), so that the operator counts the time
# between two groups as lost, and the steps trained again after a restore, even when no
# failure was recorded (a process torchrun's agent restarted in place, a group re-formed).
FIRST_STEP: Final = "first_step"
FIRST_STEP_AT: Final = "first_step_at"
PREVIOUS_STEP: Final = "previous_step"
PREVIOUS_STEP_AT: Final = "previous_step_at"
INCARNATION_KEYS: Final = frozenset({FIRST_STEP, FIRST_STEP_AT, PREVIOUS_STEP, PREVIOUS_STEP_AT})
# Keys of `preflight`: the all-reduce bus bandwidth and every link of a ring through the ranks
# (the slowest, when there are many), with the median link of each kind.
PREFLIGHT_MEGABYTES: Final = "megabytes"
PREFLIGHT_BUS_GBPS: Final = "bus_gbps"
PREFLIGHT_MEDIAN_IN_POD_GBPS: Final = "median_in_pod_gbps"
PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS: Final = "median_across_pods_gbps"
PREFLIGHT_LINKS: Final = "links"
PREFLIGHT_MEASURED_AT: Final = "measured_at"
LINK_FROM: Final = "from"
LINK_TO: Final = "to"
LINK_FROM_RANK: Final = "from_rank"
LINK_TO_RANK: Final = "to_rank"
LINK_GBPS: Final = "gbps"
PREFLIGHT_KEYS: Final = frozenset(
    {PREFLIGHT_MEGABYTES, PREFLIGHT_BUS_GBPS, PREFLIGHT_MEDIAN_IN_POD_GBPS, PREFLIGHT_LINKS}
    | {PREFLIGHT_MEDIAN_ACROSS_PODS_GBPS, PREFLIGHT_MEASURED_AT}
)
LINK_KEYS: Final = frozenset({LINK_FROM, LINK_TO, LINK_FROM_RANK, LINK_TO_RANK, LINK_GBPS})
# Keys of `workers`: {window_steps, median_work_seconds, ranks: [one per rank, bounded]}, where
# a rank's work is its data and compute seconds per step (what makes it slow, not its waiting).
WINDOW_STEPS: Final = "window_steps"
MEDIAN_WORK_SECONDS: Final = "median_work_seconds"
RANKS: Final = "ranks"  # also in a heartbeat: that pod's own ranks
RANK_INDEX: Final = "rank"
RANK_POD: Final = "pod"
STEP_SECONDS: Final = "step_seconds"
DATA_SECONDS: Final = "data_seconds"
COMPUTE_SECONDS: Final = "compute_seconds"
COMMUNICATION_SECONDS: Final = "communication_seconds"
MEMORY_PEAK_BYTES: Final = "memory_peak_bytes"
RANK_KEYS: Final = frozenset(
    {RANK_INDEX, RANK_POD, STEP_SECONDS, DATA_SECONDS, COMPUTE_SECONDS, COMMUNICATION_SECONDS}
    | {SAMPLES_PER_SECOND, MEMORY_PEAK_BYTES}
)
# The failure verdict in a termination message, and the classes the trainer may name there.
FAILURE_CLASS: Final = "failureClass"
FAILURE_MESSAGE: Final = "message"
COMMUNICATION: Final = "Communication"  # the collectives or the rendezvous, not the user's code
USER_ERROR: Final = "UserError"
# A worker's exit code after a stop the group agreed on for another pod's sake (EX_TEMPFAIL):
# not an end, so its elastic agent restarts it into the group that re-forms.
EXIT_REJOIN: Final = 75
