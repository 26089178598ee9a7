"""The job's limits and clocks, each a step that returns what it decided (pure):
spec.runPolicy's activeDeadlineSeconds and ttlSecondsAfterFinished,
spec.scheduling's startupTimeoutSeconds and gang scheduler, and a fixed-size job scaled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ringleader import constants as c
from ringleader import gang, pods, startup, workerenv
from ringleader.decisions import Event, JobFailure
from ringleader.models import DistributedTrainingJob
from ringleader.statusmodels import JobStatus

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class Check:
    """A limit's verdict: the job's failure, or when the limit could next be reached."""

    failure: JobFailure | None = None
    wake_after: float | None = None  # seconds


def check_deadline(job: DistributedTrainingJob, status: JobStatus, now: datetime) -> Check:
    """DeadlineExceeded once the job has run activeDeadlineSeconds since its start."""
    deadline = job.spec.run_policy.active_deadline_seconds if job.spec.run_policy else None
    started = status.start_time
    if deadline is None or started is None or now < started + timedelta(seconds=deadline):
        return Check()
    return Check(JobFailure(c.REASON_DEADLINE_EXCEEDED, f"the job ran longer than {deadline}s"))


def check_startup(
    job: DistributedTrainingJob, workers: Sequence[Pod], attempt: int, now: datetime
) -> Check:
    """StartupTimeout once a worker has waited startupTimeoutSeconds to run (startup.py)."""
    why, wait = startup.startup_timeout(job, workers, attempt, now)
    wake = None if wait is None else wait + 1.0
    return Check(JobFailure(c.REASON_STARTUP_TIMEOUT, why) if why else None, wake)


def check_gang(
    job: DistributedTrainingJob, workers: Sequence[Pod], attempt: int, served: bool
) -> Check:
    """A gang job whose scheduler's PodGroup API is missing fails before it creates workers
    that no scheduler would bind; workers already running are left alone."""
    api = gang.api_of(job)
    if api is None or served:
        return Check()
    current = [w for w in workers if pods.in_attempt(w, attempt)]
    if len(current) >= job.spec.replicas:
        return Check()
    return Check(JobFailure(c.REASON_GANG_UNAVAILABLE, gang.describe_missing(api)))


@dataclass(frozen=True)
class SizeRestart:
    """A fixed-size job's gang restart at its new size: the next attempt and its event."""

    attempt: int
    event: Event


def restart_at_new_size(
    job: DistributedTrainingJob, workers: Sequence[Pod], attempt: int
) -> SizeRestart | None:
    """A fixed-size job scaled to another size: its workers' rendezvous was set up for exactly
    the old size, so the gang restarts from its checkpoint at the new one (not a failure).
    An elastic job's workers accept any size between its bounds: pods just come and go."""
    if job.spec.elastic is not None:
        return None
    wanted = workerenv.compute_nnodes(job.spec)
    told = {_nnodes_of(w) for w in pods.current_workers(workers, attempt)} - {None}
    if not told or told == {wanted}:
        return None
    old = ", ".join(sorted(str(n).split(":")[0] for n in told))
    message = (
        f"scaled from {old} to {job.spec.replicas} workers: the gang restarts from its newest "
        f"checkpoint at the new size (a fixed-size job; spec.elastic resizes in place)"
    )
    return SizeRestart(attempt + 1, Event("Normal", c.REASON_RESTARTING_AT_NEW_SIZE, message))


def _nnodes_of(pod: Pod) -> str | None:
    """The PET_NNODES a worker pod was started with."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for var in containers[0].get("env") or []:
        if var.get("name") == c.ENV_PET_NNODES:
            return str(var.get("value"))
    return None


def plan_expiry(
    job: DistributedTrainingJob, status: JobStatus, now: datetime
) -> tuple[bool, float | None]:
    """(delete the job now?, seconds until its deadline or TTL expires), for the new status."""
    policy = job.spec.run_policy
    if policy is None:
        return False, None
    if status.phase in c.TERMINAL_PHASES:
        finished = status.completion_time
        if policy.ttl_seconds_after_finished is None or finished is None:
            return False, None
        left = (finished - now).total_seconds() + policy.ttl_seconds_after_finished
        return left <= 0, max(left, 0.0)
    started = status.start_time
    if policy.active_deadline_seconds is None or started is None:
        return False, None
    return False, max((started - now).total_seconds() + policy.active_deadline_seconds, 0.0)
