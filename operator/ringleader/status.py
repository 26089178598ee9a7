"""Pure status logic: observed worker pods + the job → phase, conditions and counters.

The phase comes from an ordered table (PHASE_TABLE): the first row whose test holds wins. The
reconcile loop passes in what only it can decide (a failure verdict: deadline, restart budget,
policy); everything else is read from the pods. Same inputs, same output: a status that did not
change yields an identical dict, so the loop writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from ringleader import constants as c
from ringleader import gang, naming, pods, preflight, rendezvous, startup, workerenv
from ringleader.apitime import truncate_to_second
from ringleader.constants import Framework, Phase
from ringleader.decisions import JobFailure
from ringleader.models import DistributedTrainingJob
from ringleader.statusmodels import (
    Condition,
    JobStatus,
    PreflightResult,
    ProgressReporting,
    StragglerReport,
)

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class PodCounts:
    """Worker pods of the current restart attempt by state, plus leftovers of older attempts."""

    pending: int = 0
    running: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    stale: int = 0  # pods of older attempts not yet gone

    @property
    def active(self) -> int:
        """Pods that exist and have not finished."""
        return self.pending + self.running


def count_worker_pods(workers: Sequence[Pod], attempt: int) -> PodCounts:
    """Count worker pods; terminating ones count only as stale (old attempt) or not at all."""
    counts = {"pending": 0, "running": 0, "ready": 0, "succeeded": 0, "failed": 0, "stale": 0}
    for pod in workers:
        if pods.attempt_of(pod) != attempt:
            counts["stale"] += 1
            continue
        if pods.is_leaving(pod):
            continue  # on its way out: neither capacity nor a result
        # A worker whose containers all exited 0 has finished, whatever the phase says yet:
        # counted as running-but-not-ready it would make a finishing job look Starting.
        phase = "Succeeded" if pods.exited_cleanly(pod) else pods.phase_of(pod)
        key = {"Running": "running", "Succeeded": "succeeded", "Failed": "failed"}.get(phase)
        counts[key or "pending"] += 1
        counts["ready"] += pods.is_ready(pod)
    return PodCounts(**counts)


@dataclass(frozen=True)
class Observation:
    """Everything the phase table looks at."""

    desired: int
    min_ready: int  # fewest ready workers that still count as Running
    suspended: bool
    counts: PodCounts
    previous_phase: Phase | None
    failure: JobFailure | None
    elastic: bool = False
    nproc: int = 1  # processes per worker pod
    training: int | None = None  # processes in the group, as the trainer last reported
    leaving: tuple[str, ...] = ()  # worker pods of this attempt being deleted
    waiting: str = ""  # why the first waiting worker waits (startup.waiting_note), or ""
    refused: str = ""  # what the API server refused to create and why (a quota), or ""
    queued: tuple[str, str] | None = None  # (reason, message) while Kueue holds the job

    @property
    def refused_note(self) -> str:
        """What the API server refuses to create (a quota), as a note to a message, or "" ."""
        return f"; {self.refused}" if self.refused else ""

    @property
    def leaving_note(self) -> str:
        """Names the workers on their way out: the operator did not fail them, so nothing
        else tells a user which pod a drain, an eviction or a `kubectl delete` took."""
        if not self.leaving:
            return ""
        verb = "is" if len(self.leaving) == 1 else "are"
        return f"; {', '.join(self.leaving)} {verb} being deleted"


@dataclass(frozen=True)
class Decision:
    """A phase with the reason and message of its condition."""

    phase: Phase
    reason: str
    message: str


Row = tuple[Callable[[Observation], bool], Callable[[Observation], Decision]]


def _decide(phase: Phase, reason: str, message: str) -> Callable[[Observation], Decision]:
    # The message is a template over the counts, so it says what the pods say.
    def decide(obs: Observation) -> Decision:
        return Decision(phase, reason, message.format(o=obs, n=obs.counts))

    return decide


def _failed(failure: JobFailure | None) -> Decision:
    assert failure is not None  # guarded by the row's test
    return Decision(Phase.FAILED, failure.reason, failure.message)


def _queued(obs: Observation) -> tuple[str, str]:
    assert obs.queued is not None
    reason, message = obs.queued
    leaving = f" ({obs.counts.active} workers still stopping)" if obs.counts.active else ""
    return reason, message + leaving


def _restarting(obs: Observation) -> bool:
    n = obs.counts
    # An elastic job may run on fewer workers: its restart is over once enough are ready.
    unfinished_restart = obs.previous_phase == Phase.RESTARTING and n.ready < obs.min_ready
    return n.failed > 0 or n.stale > 0 or unfinished_restart


def _resizing(obs: Observation) -> bool:
    """An elastic group whose ready workers differ from those it last trained with."""
    n = obs.counts
    ready = n.ready >= obs.min_ready and n.ready > 0
    return (
        obs.elastic and ready and obs.training is not None and n.ready * obs.nproc != obs.training
    )


PHASE_TABLE: tuple[Row, ...] = (
    (
        lambda o: o.previous_phase in c.TERMINAL_PHASES,
        lambda o: Decision(
            Phase(str(o.previous_phase)), c.REASON_ALREADY_FINISHED, "the job finished"
        ),
    ),
    (lambda o: o.failure is not None, lambda o: _failed(o.failure)),
    (
        lambda o: o.queued is not None,
        lambda o: Decision(Phase.QUEUED, *_queued(o)),
    ),
    (
        lambda o: o.suspended,
        _decide(
            Phase.SUSPENDED,
            c.REASON_SUSPENDED,
            "suspended: worker pods removed ({n.active} still running), checkpoint volume kept",
        ),
    ),
    (
        lambda o: o.counts.succeeded > 0 and o.counts.active == 0 and o.counts.failed == 0,
        _decide(Phase.SUCCEEDED, c.REASON_SUCCEEDED, "{n.succeeded} workers exited with 0"),
    ),
    (
        _restarting,
        _decide(
            Phase.RESTARTING,
            c.REASON_RESTART_IN_PROGRESS,
            "restarting: {n.failed} failed, {n.stale} of an older attempt, "
            "{n.ready}/{o.desired} ready{o.waiting}",
        ),
    ),
    (
        _resizing,
        _decide(
            Phase.RESIZING,
            c.REASON_RESIZING,
            "re-forming the group: {n.ready}/{o.desired} workers ready, the last step was "
            "trained by {o.training} processes{o.leaving_note}",
        ),
    ),
    (
        # Workers that already exited 0 are finishing, not missing.
        lambda o: o.counts.ready + o.counts.succeeded >= o.desired,
        _decide(Phase.RUNNING, c.REASON_ALL_WORKERS_RUNNING, "{n.ready}/{o.desired} ready"),
    ),
    (
        lambda o: o.counts.ready >= o.min_ready and o.counts.ready > 0,
        _decide(
            Phase.RUNNING,
            c.REASON_RUNNING_BELOW_DESIRED,
            "{n.ready}/{o.desired} workers ready (elastic minimum {o.min_ready})"
            "{o.leaving_note}{o.waiting}{o.refused_note}",
        ),
    ),
    (
        lambda o: bool(o.refused),
        lambda o: Decision(
            Phase.STARTING if o.counts.active else Phase.PENDING,
            c.REASON_CREATION_REFUSED,
            f"{o.counts.ready}/{o.desired} ready; {o.refused}",
        ),
    ),
    (
        lambda o: o.counts.active > 0,
        _decide(
            Phase.STARTING,
            c.REASON_WORKERS_STARTING,
            "{n.ready}/{o.desired} ready{o.leaving_note}{o.waiting}",
        ),
    ),
    (
        lambda o: True,
        _decide(Phase.PENDING, c.REASON_WAITING_FOR_WORKERS, "no worker pod exists yet"),
    ),
)


def decide_phase(obs: Observation) -> Decision:
    """The first row of PHASE_TABLE that applies."""
    for applies, decide in PHASE_TABLE:
        if applies(obs):
            return decide(obs)
    raise AssertionError("the last row of PHASE_TABLE always applies")


def build_conditions(
    decision: Decision, previous: Sequence[Condition], generation: int, now: datetime
) -> list[Condition]:
    """One condition per type: True for the phase's own type, False (with the reason) otherwise."""
    before = {x.type: x for x in previous}
    out = []
    for kind in c.CONDITION_TYPES:
        status: Literal["True", "False"] = "True" if kind == decision.phase else "False"
        old = before.get(kind)
        # The transition time moves only when the status flips: steady state writes nothing.
        kept = old.last_transition_time if old is not None and old.status == status else None
        out.append(
            Condition(
                type=kind,
                status=status,
                reason=decision.reason,
                message=decision.message,
                last_transition_time=kept or truncate_to_second(now),
                observed_generation=generation,
            )
        )
    return out


def observe(
    job: DistributedTrainingJob,
    workers: Sequence[Pod],
    failure: JobFailure | None,
    attempt: int | None = None,
    pod_group: Pod | None = None,
) -> Observation:
    """Summarize the job and its worker pods for the phase table; attempt: the restart attempt
    decided for this pass (status.restartAttempt when not given); pod_group: the gang's PodGroup
    as its scheduler last wrote it, if any."""
    spec, status = job.spec, job.status or JobStatus()
    if attempt is None:
        attempt = status.restart_attempt or 0
    return Observation(
        desired=spec.replicas,
        min_ready=spec.fewest_workers(),
        suspended=bool(spec.run_policy and spec.run_policy.suspend),
        counts=count_worker_pods(workers, attempt),
        previous_phase=status.phase,
        failure=failure,
        elastic=spec.elastic is not None,
        nproc=workerenv.compute_nproc_per_node(spec),
        training=status.progress.world_size if status.progress else None,
        leaving=_leaving(workers, attempt),
        waiting=startup.waiting_note(workers, attempt, gang.explain_unplaced(pod_group)),
        refused=status.refusal.message if status.refusal and not status.refusal.lasting else "",
    )


def _leaving(workers: Sequence[Pod], attempt: int) -> tuple[str, ...]:
    return tuple(
        sorted(
            pods.name_of(p) for p in workers if pods.is_leaving(p) and pods.in_attempt(p, attempt)
        )
    )


def compute_status(
    job: DistributedTrainingJob,
    workers: Sequence[Pod],
    now: datetime,
    failure: JobFailure | None = None,
    attempt: int | None = None,
    *,
    pod_group: Pod | None = None,
    queued: tuple[str, str] | None = None,
) -> JobStatus:
    """The job's status with the fields this module owns brought up to date: phase,
    conditions, counters, start and completion times. queued: (reason, message) while Kueue
    holds the job (queueing.py)."""
    obs = replace(observe(job, workers, failure, attempt, pod_group), queued=queued)
    decision = decide_phase(obs)
    previous = job.status or JobStatus()
    n, generation = obs.counts, job.metadata.generation or 0
    training = decision.phase in (Phase.RUNNING, Phase.RESIZING)
    return previous.model_copy(
        update={
            "phase": decision.phase,
            "replicas": n.active,
            "ready_replicas": n.ready,
            # The trainer's own count once it reported one; ready pods can run more processes
            # than the group that trains, while an elastic group re-forms.
            "world_size": (obs.training or n.ready * obs.nproc) if training else 0,
            "workers": f"{n.ready}/{obs.desired}",
            "selector": naming.worker_selector_string(job.metadata.name),
            "rendezvous_endpoint": _rendezvous_endpoint(job),
            "observed_generation": generation,
            "conditions": _conditions(decision, previous, generation, now),
            "start_time": _start_time(decision, previous.start_time, now),
            "completion_time": _completion_time(decision, previous.completion_time, now),
        }
    )


def _rendezvous_endpoint(job: DistributedTrainingJob) -> str | None:
    # Recorded once, with the job's first status, before any child is made (rendezvous.py),
    # and never written again: where an older CRD prunes the field, the job reads as one an
    # older operator started (both names resolve then), not as a patch to make at every pass.
    previous = job.status or JobStatus()
    if previous.phase is not None or job.spec.framework != Framework.PYTORCH:
        return previous.rendezvous_endpoint
    return rendezvous.endpoint(job)


def _conditions(
    decision: Decision, previous: JobStatus, generation: int, now: datetime
) -> list[Condition]:
    old = previous.conditions or []
    if decision.reason == c.REASON_ALREADY_FINISHED and old:
        return list(old)  # a finished job keeps the reason it finished for
    phases = build_conditions(decision, old, generation, now)
    reporting = previous.reporting
    if reporting is not None:
        phases.append(_reporting_condition(reporting, generation))
    if previous.stragglers is not None:
        phases.append(_straggler_condition(previous.stragglers, old, generation, now))
    if previous.preflight is not None:
        phases.append(_preflight_condition(previous.preflight, generation))
    return phases


def _reporting_condition(reporting: ProgressReporting, generation: int) -> Condition:
    """ProgressReported: whether the workers report progress (status.reporting)."""
    return Condition(
        type=c.CONDITION_PROGRESS_REPORTED,
        status="True" if reporting.reported else "False",
        reason=c.REASON_REPORTED if reporting.reported else c.REASON_NOT_REPORTED,
        message=reporting.message,
        last_transition_time=reporting.since,
        observed_generation=generation,
    )


def _straggler_condition(
    named: Sequence[StragglerReport], old: Sequence[Condition], generation: int, now: datetime
) -> Condition:
    """Straggler: whether a worker holds the others back now (status.stragglers)."""
    status: Literal["True", "False"] = "True" if named else "False"
    before = next((x for x in old if x.type == c.CONDITION_STRAGGLER), None)
    kept = before.last_transition_time if before is not None and before.status == status else None
    if named:
        message = "; ".join(
            f"{s.pod} (rank {s.rank}{_on(s.node)}) is {s.slower_by_percent}% "
            "slower than the other workers' median"
            for s in named
        )
    else:
        message = "no worker holds the others back"
    return Condition(
        type=c.CONDITION_STRAGGLER,
        status=status,
        reason=c.REASON_SLOW_WORKER if named else c.REASON_NO_SLOW_WORKER,
        message=message,
        last_transition_time=kept or truncate_to_second(now),
        observed_generation=generation,
    )


def _preflight_condition(result: PreflightResult, generation: int) -> Condition:
    """PreflightPassed: how the newest group's network measured (status.preflight)."""
    return Condition(
        type=c.CONDITION_PREFLIGHT_PASSED,
        status="True" if result.passed else "False",
        reason=preflight.reason(result),
        message=result.message,
        last_transition_time=result.measured_at,
        observed_generation=generation,
    )


def _on(node: str | None) -> str:
    return f" on node {node}" if node else ""


def _start_time(decision: Decision, previous: datetime | None, now: datetime) -> datetime | None:
    # Like a Job's: cleared while suspended (or queued), so activeDeadlineSeconds counts from
    # the resume (or the admission).
    if decision.phase in (Phase.PENDING, Phase.SUSPENDED, Phase.QUEUED):
        return previous if decision.phase == Phase.PENDING else None
    return previous or truncate_to_second(now)


def _completion_time(
    decision: Decision, previous: datetime | None, now: datetime
) -> datetime | None:
    # Set for failure too: ttlSecondsAfterFinished counts from it.
    if decision.phase in c.TERMINAL_PHASES:
        return previous or truncate_to_second(now)
    return None
