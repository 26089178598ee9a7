"""The status of a DistributedTrainingJob as pydantic models, and the merge patch between two.

Only the operator writes status. The reconcile loop and the progress poller read it typed and
write it back as a merge patch of the top-level fields that changed (`plan_status_patch`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from ringleader.constants import FailureAction, FailureClass, Phase
from ringleader.modelbase import ApiModel


class Condition(ApiModel):
    """One aspect of the job's state, in the shape of metav1.Condition."""

    type: Annotated[str, StringConstraints(max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    message: Annotated[str, StringConstraints(max_length=32768)] | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class Progress(ApiModel):
    """Training progress as rank 0 last reported it."""

    step: int | None = Field(default=None, ge=0)
    epoch: int | None = Field(default=None, ge=0)
    loss: float | None = None
    samples_per_second: float | None = None
    world_size: int | None = Field(default=None, ge=1)
    """Processes that trained the reported step: the group's size as the trainer sees it."""
    updated_at: datetime | None = None


class CheckpointStatus(ApiModel):
    """The newest valid checkpoint."""

    step: int | None = Field(default=None, ge=0)
    path: str | None = None
    time: datetime | None = None


class LastFailure(ApiModel):
    """The newest worker failure the operator acted on."""

    failure_class: FailureClass = Field(alias="class")
    """Why the worker failed, as classified from what Kubernetes and the trainer report."""
    pod: str
    pod_uid: str | None = Field(default=None, alias="podUID")
    """The failed pod's uid: a failure is acted on once, however often the loop runs."""
    exit_code: int | None = None
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    message: Annotated[str, StringConstraints(max_length=4096)] | None = None
    action: FailureAction | None = None
    """What the failure policy decided."""
    time: datetime | None = None
    steps_lost: int | None = Field(default=None, ge=0)
    """Steps trained after the newest checkpoint, to be trained again after the restart."""
    in_a_row: int | None = Field(default=None, ge=1)
    """Failures in a row with no checkpoint committed in between; gang restarts back off."""


class HangReport(ApiModel):
    """A hang the operator detected and the reconcile loop has yet to act on."""

    step: int = Field(ge=0)
    """The step the job is stuck after."""
    stalled_seconds: int = Field(ge=0)
    stalled_pods: Annotated[list[str], Field(max_length=64)] | None = None
    """Workers whose own last step is the oldest (or that did not answer)."""
    detected_at: datetime


class StragglerReport(ApiModel):
    """A worker that holds the others back, as it was when the operator named it."""

    pod: str
    pod_uid: str | None = Field(default=None, alias="podUID")
    """The uid of the pod that was slow: that pod, not another that might hold its name."""
    rank: int = Field(ge=0)
    """Its first process's global rank in the group then."""
    node: str | None = None
    slower_by_percent: int = Field(ge=0)
    """How much longer than the median worker its own work per step took."""
    work_seconds: float = Field(ge=0)
    """Its seconds per step waiting for data and computing (not waiting for the others)."""
    median_work_seconds: float = Field(ge=0)
    """The median of the other workers' (the trainer's median of all, in a large group)."""
    step: int = Field(ge=0)
    """The step at which it was named."""
    since: datetime
    replaced: bool | None = None
    """True once its pod was deleted to be replaced (failurePolicy.stragglerDetection.action
    ReplacePod); its node is then in status.avoidedNodes."""


class PreflightResult(ApiModel):
    """The network of the newest group, as it measured it before its first step, judged."""

    passed: bool
    """No link below the job's margin of the median link of its kind."""
    world_size: int = Field(ge=2)
    bus_bandwidth_gbps: float = Field(ge=0)
    """The group's all-reduce bus bandwidth (nccl-tests' definition), GB/s."""
    median_link_gbps: float | None = None
    """The median link between pods (inside a pod when all ranks share one), GB/s."""
    slow_pods: Annotated[list[str], Field(max_length=64)] | None = None
    """Workers both of whose links in the ring are slow: their network, not one link."""
    slow_links: Annotated[list[str], Field(max_length=16)] | None = None
    """The slow links, "from-pod -> to-pod: GB/s", slowest first."""
    message: Annotated[str, StringConstraints(max_length=2048)]
    measured_at: datetime


class ProgressReporting(ApiModel):
    """Whether the workers report their progress (the built-in trainer does; a script does
    through Ringleader's client library): without reports, the progress columns stay empty and
    hang detection is off."""

    reported: bool
    message: Annotated[str, StringConstraints(max_length=1024)] | None = None
    since: datetime | None = None


class CreationRefusal(ApiModel):
    """The API server refused to create one of the job's children (admission, validation, a
    name held by another object): quoted here, the job Pending while it may pass (a quota),
    Failed when it cannot."""

    reason: Annotated[str, StringConstraints(max_length=128)]
    message: Annotated[str, StringConstraints(max_length=1024)]
    lasting: bool
    """Trying again cannot help: the job fails."""
    since: datetime | None = None


class DistributedTrainingJobStatus(ApiModel):
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
    rendezvous_endpoint: Annotated[str, StringConstraints(max_length=320)] | None = None
    """Where torchrun's agents meet (their PET_RDZV_ENDPOINT): the rendezvous pod's name in
    the workers' subdomain, recorded with the job's first status. Absent in a job an older
    operator started: its rendezvous keeps a Service of its own, <job>-rdzv.<namespace>.svc.
    PyTorch jobs only."""
    observed_generation: int | None = Field(default=None, ge=0)
    progress: Progress | None = None
    checkpoint: CheckpointStatus | None = None
    refusal: CreationRefusal | None = None
    """Set by the operator when the API server refused a child; cleared once all exist."""
    reporting: ProgressReporting | None = None
    """Set by the progress poller: reports seen, or none for a while after the workers started."""
    stragglers: Annotated[list[StragglerReport], Field(max_length=64)] | None = None
    """Set by the progress poller from the workers' figures: workers that hold the others back
    now (empty once none does)."""
    preflight: PreflightResult | None = None
    """Set by the progress poller when a group measured its network (spec.networking.preflight)."""
    avoided_nodes: Annotated[list[str], Field(max_length=64)] | None = None
    """Nodes whose straggler was replaced: the job's later workers are kept off them."""
    conditions: Annotated[list[Condition], Field(max_length=16)] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None


JobStatus = DistributedTrainingJobStatus  # the short name the operator's modules use
Patch = dict[str, Any]


def dump_status(status: JobStatus) -> Patch:
    """The status as the API holds it (camelCase, no empty fields).

    lastFailure keeps its empty fields: written as a merge patch, None clears what the previous
    failure had there (its exit code, its steps lost...).
    """
    out = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    if status.last_failure is not None:
        out["lastFailure"] = status.last_failure.model_dump(by_alias=True, mode="json")
    return out


def plan_status_patch(old: JobStatus, new: JobStatus) -> Patch | None:
    """The merge patch from old to new: every top-level field that changed, None for one that
    is gone; None when nothing changed, so a steady state writes nothing."""
    before, after = dump_status(old), dump_status(new)
    patch = {
        key: after.get(key)
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }
    return patch or None
