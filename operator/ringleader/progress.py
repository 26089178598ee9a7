"""Mirror the trainer's progress into status: which pod to ask, and what to write.

The trainer needs no cluster credentials: every worker pod's launcher serves its progress
document (reports.py) from files that global rank 0 writes, and the operator polls one running
worker of the current attempt. Only `status.progress` and `status.checkpoint` are written here;
the reconcile loop owns every other status field (and writes the finished workers' last report
with the phase that ends the job).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from ringleader import constants as c
from ringleader import pods, reports
from ringleader.apitime import from_epoch, truncate_to_second
from ringleader.models import DistributedTrainingJob
from ringleader.reports import ProgressReport
from ringleader.statusmodels import (
    CheckpointStatus,
    JobStatus,
    Patch,
    Progress,
    ProgressReporting,
    plan_status_patch,
)
from ringleader.workerenv import compute_nproc_per_node

Pod = Mapping[str, Any]


def pick_reporter(
    children: Sequence[Pod], attempt: int, unreachable: Collection[str] = ()
) -> Pod | None:
    """The running worker of the current attempt with the lowest index and an IP, passing over
    those (by uid) that did not answer lately: a pod on a vanished node looks Running for a
    minute or more, and every launcher serves the same progress."""
    candidates = [
        pod
        for pod in children
        if pods.is_worker(pod)
        and pods.in_attempt(pod, attempt)
        and pods.phase_of(pod) == "Running"
        and (pod.get("status") or {}).get("podIP")
        and pods.uid_of(pod) not in unreachable
    ]
    return min(candidates, key=pods.index_of) if candidates else None


def read_final_report(workers: Sequence[Pod], attempt: int) -> ProgressReport | None:
    """The last progress report a finished worker left as its termination message.

    The launcher writes it when its workers end, so the final step and checkpoint reach status
    although the /progress endpoint is gone with the pod.
    """
    finished = sorted(
        (pods.index_of(pod), message)
        for pod in workers
        if pods.is_worker(pod) and pods.in_attempt(pod, attempt)
        for message in pods.termination_messages(pod)
    )
    for _, message in finished:
        # Not a document of ours (a user's own last words): parses to None.
        report = reports.parse_progress(reports.parse_termination_message(message))
        if report is not None:
            return report
    return None


def _seconds(epoch: float) -> datetime:
    # Status times are whole seconds, as the API serializes them.
    return truncate_to_second(from_epoch(epoch))


def build_progress(report: ProgressReport) -> Progress:
    """status.progress from a report."""
    return Progress(
        step=report.step,
        epoch=report.epoch,
        loss=None if report.loss is None else round(report.loss, 6),
        samples_per_second=None
        if report.samples_per_second is None
        else round(report.samples_per_second, 1),
        world_size=report.world_size if report.world_size and report.world_size > 0 else None,
        updated_at=None if report.updated_at is None else _seconds(report.updated_at),
    )


def build_checkpoint(report: ProgressReport) -> CheckpointStatus | None:
    """status.checkpoint from a report; None when it tells of no checkpoint."""
    checkpoint = report.checkpoint
    if checkpoint is None:
        return None
    when = checkpoint.time or report.updated_at or 0.0
    return CheckpointStatus(step=checkpoint.step, path=checkpoint.path, time=_seconds(when))


def apply_report(status: JobStatus, report: ProgressReport | None) -> JobStatus:
    """The status with a report's progress and newest checkpoint mirrored into it."""
    if report is None:
        return status
    update: dict[str, Any] = {"progress": build_progress(report)}
    checkpoint = build_checkpoint(report)
    if checkpoint is not None:
        update["checkpoint"] = checkpoint
    return status.model_copy(update=update)


def plan_progress_patch(status: JobStatus, report: ProgressReport | None) -> Patch | None:
    """The status merge patch for a new report, or None when it says nothing new."""
    return plan_status_patch(status, apply_report(status, report))


def only_moves_on(status: JobStatus, report: ProgressReport | None) -> bool:
    """Whether mirroring the report would only move status.progress on: the group's size and
    newest checkpoint as status shows them, and status already showing a step after the
    newest failure (which the failure policy reads to judge an in-place recovery). Such a
    write may wait for the job's turn (`mirror_seconds`); any other goes at once."""
    shown = status.progress
    if report is None or shown is None or shown.updated_at is None:
        return False
    if build_progress(report).world_size != shown.world_size:
        return False
    newest = build_checkpoint(report)
    if newest is not None and newest != status.checkpoint:
        return False
    failed = status.last_failure.time if status.last_failure else None
    return failed is None or shown.updated_at > failed


def mirror_seconds(poll_seconds: float, active_jobs: int, writes_per_second: float) -> float:
    """How often one job's step is mirrored into its status when nothing else changes: every
    poll, or less often once the jobs' mirrors together would pass the write budget."""
    if writes_per_second <= 0:
        return poll_seconds
    return max(poll_seconds, active_jobs / writes_per_second)


def detect_resize(status: JobStatus, report: ProgressReport | None) -> tuple[int, int] | None:
    """(old, new) group size in processes when this report's differs from the one in status."""
    old = status.progress.world_size if status.progress else None
    new = report.world_size if report else None
    if old is None or new is None or new <= 0 or old == new:
        return None
    return old, new


def describe_resize(job: DistributedTrainingJob, old: int, new: int) -> str:
    """The Resized event's message: from, to, and why as far as the job's spec and status tell."""
    status = job.status or JobStatus()
    workers = f"{status.ready_replicas or 0}/{job.spec.replicas} workers ready"
    why = _resize_cause(job, status, old, new)
    return f"the training group re-formed from {old} to {new} processes: {why}; {workers}"


def _resize_cause(job: DistributedTrainingJob, status: JobStatus, old: int, new: int) -> str:
    if new > old:
        return "workers joined (scaled up, or capacity came back)"
    last = status.last_failure
    # Only a failure since the last report at the old size can explain this shrink.
    before = status.progress.updated_at if status.progress else None
    if last is not None and last.pod and last.time and (before is None or last.time >= before):
        return f"after {last.pod} was lost ({last.failure_class})"
    if job.spec.replicas * compute_nproc_per_node(job.spec) < old:
        return "workers were removed (scaled down)"
    # Not scaled down and no failure reported: pods that still look Running left the group,
    # as on a node that vanished (Kubernetes reports such pods only after 40 s or more).
    return "workers stopped answering without a word (a lost node?)"


def resize_seconds(status: JobStatus, report: ProgressReport) -> float | None:
    """From the last report at the old size (in status) to this first one at the new size."""
    before = status.progress.updated_at if status.progress else None
    if before is None or report.updated_at is None:
        return None
    return max(report.updated_at - before.timestamp(), 0.0)


NOT_REPORTED = (
    "no worker has answered on the progress port in the {seconds}s since they started: a script "
    "that does not use Ringleader's client library reports no progress, so STEP, LOSS and "
    "LAST-CKPT stay empty and hang detection is off for this job"
)


def judge_reporting(
    current: ProgressReporting | None,
    answered: bool,
    report: ProgressReport | None,
    waited: float | None,
    now: datetime,
) -> ProgressReporting | None:
    """status.reporting after one poll, when it changes (else None). answered: a worker's
    endpoint answered, with or without a report; waited: seconds since the poller first found
    a worker of the job running (None: none runs)."""
    if report is not None:
        if current is not None and current.reported:
            return None
        message = "the workers report their progress"
        return ProgressReporting(reported=True, message=message, since=truncate_to_second(now))
    settled = current is not None  # reported once, or already said not to be
    if settled or answered or waited is None or waited < c.NOT_REPORTED_AFTER_SECONDS:
        return None
    message = NOT_REPORTED.format(seconds=c.NOT_REPORTED_AFTER_SECONDS)
    return ProgressReporting(reported=False, message=message, since=truncate_to_second(now))
