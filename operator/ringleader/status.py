"""Pure status logic: observed worker pods + the job → phase, conditions and counters.

The phase comes from an ordered table (PHASE_TABLE): the first row whose test holds wins. The
reconcile loop passes in what only it can decide (a failure verdict: deadline, restart budget,
policy); everything else is read from the pods. Same inputs, same output: a status that did not
change yields an identical dict, so the loop writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringleader import constants as c
from ringleader import naming, startup, workerenv
from ringleader.models import DistributedTrainingJob

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class Failure:
    """The reconcile loop's verdict that the job has failed, e.g. DeadlineExceeded."""

    reason: str
    message: str


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


def is_pod_ready(pod: Pod) -> bool:
    """True when the pod runs and its Ready condition is True."""
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)
    return status.get("phase") == "Running" and ready


def count_worker_pods(pods: Sequence[Pod], attempt: int) -> PodCounts:
    """Count worker pods; terminating ones count only as stale (old attempt) or not at all."""
    counts = {"pending": 0, "running": 0, "ready": 0, "succeeded": 0, "failed": 0, "stale": 0}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(c.LABEL_RESTART_ATTEMPT) != str(attempt):
            counts["stale"] += 1
            continue
        if meta.get("deletionTimestamp"):
            continue  # on its way out: neither capacity nor a result
        phase = (pod.get("status") or {}).get("phase", "Pending")
        key = {"Running": "running", "Succeeded": "succeeded", "Failed": "failed"}.get(phase)
        counts[key or "pending"] += 1
        counts["ready"] += is_pod_ready(pod)
    return PodCounts(**counts)


@dataclass(frozen=True)
class Observation:
    """Everything the phase table looks at."""

    desired: int
    min_ready: int  # fewest ready workers that still count as Running
    suspended: bool
    counts: PodCounts
    previous_phase: str | None
    failure: Failure | None
    elastic: bool = False
    nproc: int = 1  # processes per worker pod
    training: int | None = None  # processes in the group, as the trainer last reported
    leaving: tuple[str, ...] = ()  # worker pods of this attempt being deleted
    waiting: str = ""  # why the first waiting worker waits (startup.waiting_note), or ""

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

    phase: str
    reason: str
    message: str


Row = tuple[Callable[[Observation], bool], Callable[[Observation], Decision]]


def _decide(phase: str, reason: str, message: str) -> Callable[[Observation], Decision]:
    # The message is a template over the counts, so it says what the pods say.
    def decide(obs: Observation) -> Decision:
        return Decision(phase, reason, message.format(o=obs, n=obs.counts))

    return decide


def _failed(failure: Failure | None) -> Decision:
    assert failure is not None  # guarded by the row's test
    return Decision(c.PHASE_FAILED, failure.reason, failure.message)


def _restarting(obs: Observation) -> bool:
    n = obs.counts
    # An elastic job may run on fewer workers: its restart is over once enough are ready.
    unfinished_restart = obs.previous_phase == c.PHASE_RESTARTING and n.ready < obs.min_ready
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
        lambda o: Decision(str(o.previous_phase), c.REASON_ALREADY_FINISHED, "the job finished"),
    ),
    (lambda o: o.failure is not None, lambda o: _failed(o.failure)),
    (
        lambda o: o.suspended,
        _decide(
            c.PHASE_SUSPENDED,
            c.REASON_SUSPENDED,
            "suspended: worker pods removed ({n.active} still running), checkpoint volume kept",
        ),
    ),
    (
        lambda o: o.counts.succeeded > 0 and o.counts.active == 0 and o.counts.failed == 0,
        _decide(c.PHASE_SUCCEEDED, c.REASON_SUCCEEDED, "{n.succeeded} workers exited with 0"),
    ),
    (
        _restarting,
        _decide(
            c.PHASE_RESTARTING,
            c.REASON_RESTART_IN_PROGRESS,
            "restarting: {n.failed} failed, {n.stale} of an older attempt, "
            "{n.ready}/{o.desired} ready{o.waiting}",
        ),
    ),
    (
        _resizing,
        _decide(
            c.PHASE_RESIZING,
            c.REASON_REFORMING,
            "re-forming the group: {n.ready}/{o.desired} workers ready, the last step was "
            "trained by {o.training} processes{o.leaving_note}",
        ),
    ),
    (
        # Workers that already exited 0 are finishing, not missing.
        lambda o: o.counts.ready + o.counts.succeeded >= o.desired,
        _decide(c.PHASE_RUNNING, c.REASON_ALL_WORKERS_RUNNING, "{n.ready}/{o.desired} ready"),
    ),
    (
        lambda o: o.counts.ready >= o.min_ready and o.counts.ready > 0,
        _decide(
            c.PHASE_RUNNING,
            c.REASON_RUNNING_BELOW_DESIRED,
            "{n.ready}/{o.desired} workers ready (elastic minimum {o.min_ready})"
            "{o.leaving_note}{o.waiting}",
        ),
    ),
    (
        lambda o: o.counts.active > 0,
        _decide(
            c.PHASE_STARTING,
            c.REASON_WORKERS_STARTING,
            "{n.ready}/{o.desired} ready{o.leaving_note}{o.waiting}",
        ),
    ),
    (
        lambda o: True,
        _decide(c.PHASE_PENDING, c.REASON_WAITING_FOR_WORKERS, "no worker pod exists yet"),
    ),
)


def decide_phase(obs: Observation) -> Decision:
    """The first row of PHASE_TABLE that applies."""
    for applies, decide in PHASE_TABLE:
        if applies(obs):
            return decide(obs)
    raise AssertionError("the last row of PHASE_TABLE always applies")


def parse_time(value: str | None) -> datetime | None:
    """A status or metadata time (RFC 3339, e.g. 2026-01-02T03:04:05Z); None for none."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serializes."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_conditions(
    decision: Decision, previous: Sequence[Mapping[str, Any]], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """One condition per type: True for the phase's own type, False (with the reason) otherwise."""
    before = {x.get("type"): x for x in previous}
    out = []
    for kind in c.CONDITION_TYPES:
        status = "True" if kind == decision.phase else "False"
        old = before.get(kind) or {}
        # The transition time moves only when the status flips: steady state writes nothing.
        changed = old.get("status") != status or "lastTransitionTime" not in old
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": decision.reason,
                "message": decision.message,
                "lastTransitionTime": format_time(now) if changed else old["lastTransitionTime"],
                "observedGeneration": generation,
            }
        )
    return out


def observe(
    job: DistributedTrainingJob, pods: Sequence[Pod], failure: Failure | None
) -> Observation:
    """Summarize the job and its worker pods for the phase table."""
    spec, status = job.spec, job.status
    attempt = (status.restart_attempt if status else None) or 0
    return Observation(
        desired=spec.replicas,
        min_ready=spec.fewest_workers(),
        suspended=bool(spec.run_policy and spec.run_policy.suspend),
        counts=count_worker_pods(pods, attempt),
        previous_phase=status.phase if status else None,
        failure=failure,
        elastic=spec.elastic is not None,
        nproc=workerenv.compute_nproc_per_node(spec),
        training=status.progress.world_size if status and status.progress else None,
        leaving=_leaving(pods, attempt),
        waiting=startup.waiting_note(pods, attempt),
    )


def _leaving(pods: Sequence[Pod], attempt: int) -> tuple[str, ...]:
    names = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") and labels.get(c.LABEL_RESTART_ATTEMPT) == str(attempt):
            names.append(str(meta.get("name")))
    return tuple(sorted(names))


def compute_status(
    job: DistributedTrainingJob,
    pods: Sequence[Pod],
    now: datetime,
    failure: Failure | None = None,
) -> dict[str, Any]:
    """The status fields this module owns, as a merge patch (camelCase keys)."""
    obs = observe(job, pods, failure)
    decision = decide_phase(obs)
    previous = job.status.model_dump(by_alias=True, mode="json") if job.status else {}
    n, name = obs.counts, job.metadata.name
    training = decision.phase in (c.PHASE_RUNNING, c.PHASE_RESIZING)
    return {
        "phase": decision.phase,
        "replicas": n.active,
        "readyReplicas": n.ready,
        # The trainer's own count once it reported one; ready pods can run more processes
        # than the group that trains, while an elastic group re-forms.
        "worldSize": (obs.training or n.ready * obs.nproc) if training else 0,
        "workers": f"{n.ready}/{obs.desired}",
        "selector": naming.worker_selector_string(name),
        "observedGeneration": job.metadata.generation or 0,
        "conditions": _conditions(decision, previous, job.metadata.generation or 0, now),
        "startTime": _start_time(decision, previous.get("startTime"), now),
        "completionTime": _completion_time(decision, previous.get("completionTime"), now),
    }


def _conditions(
    decision: Decision, previous: Mapping[str, Any], generation: int, now: datetime
) -> list[dict[str, Any]]:
    old = previous.get("conditions") or []
    if decision.reason == c.REASON_ALREADY_FINISHED and old:
        return list(old)  # a finished job keeps the reason it finished for
    return build_conditions(decision, old, generation, now)


def _start_time(decision: Decision, previous: str | None, now: datetime) -> str | None:
    # Like a Job's: cleared while suspended, so activeDeadlineSeconds counts from the resume.
    if decision.phase in (c.PHASE_PENDING, c.PHASE_SUSPENDED):
        return None if decision.phase == c.PHASE_SUSPENDED else previous
    return previous or format_time(now)


def _completion_time(decision: Decision, previous: str | None, now: datetime) -> str | None:
    # Set for failure too: ttlSecondsAfterFinished counts from it.
    if decision.phase in c.TERMINAL_PHASES:
        return previous or format_time(now)
    return None
