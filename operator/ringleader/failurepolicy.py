"""spec.failurePolicy: what to do about failed workers, as an action table (pure).

`decide_action` picks an action for one failure: the first rule that matches, else the default.
`decide_restart` classifies the workers of the attempt that failed, takes the failure whose action
goes furthest, and hands it to that action's handler (ACTION_HANDLERS, like JobSet's action
map). Each failure is acted on once (by pod uid); the decision is returned, never applied here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from ringleader import constants as c
from ringleader import failures, pods
from ringleader.apitime import truncate_to_second
from ringleader.constants import FailureAction, FailureClass, Framework
from ringleader.decisions import Event, JobFailure
from ringleader.failures import WorkerFailure
from ringleader.models import DistributedTrainingJob, FailurePolicy
from ringleader.statusmodels import JobStatus, LastFailure

Pod = Mapping[str, Any]

# Failures that are the cluster's doing: by default they restart without using up maxRestarts.
NOT_THE_JOBS_FAULT: Final = frozenset({FailureClass.PREEMPTED, FailureClass.NODE_LOST})


@dataclass(frozen=True)
class Action:
    """What to do about a failure, and whether it uses up one of maxRestarts."""

    kind: FailureAction
    counts: bool


@dataclass(frozen=True)
class RestartDecision:
    """What the failure policy decided in one pass; the reconcile loop writes it to status."""

    attempt: int  # the restart attempt the children follow (one more after a gang restart)
    restarts: int  # restarts so far that count towards maxRestarts
    failure: JobFailure | None = None  # the job fails (FailJob, or maxRestarts used up)
    event: Event | None = None
    last_failure: LastFailure | None = None  # the failure acted on in this pass
    restarts_by_class: dict[str, int] | None = None
    clear_hang: bool = False  # status.hang was acted on
    delete_pods: tuple[str, ...] = field(default=())  # failed workers replaced in place
    wake_after: float | None = None  # seconds until a backoff or the in-place timeout is over


def decide_action(
    policy: FailurePolicy | None, failure: WorkerFailure, framework: Framework = Framework.PYTORCH
) -> Action:
    """The first rule that matches the failure's class and exit code; else the default.

    By default a failed pod is replaced in place and the survivors re-form the group with it
    (they keep their nodes and skip a restart); a hang restarts the gang, since every worker
    is stuck in it. An in-place recovery that does not lead to a step becomes a gang restart
    (see `stalled_in_place`). A TensorFlow group cannot take a replaced worker in (its
    survivors end on the lost peer): every failure restarts its gang.
    """
    for rule in (policy.rules if policy else None) or []:
        if rule.classes is not None and failure.failure_class not in rule.classes:
            continue
        if rule.exit_codes is not None and failure.exit_code not in rule.exit_codes:
            continue
        return Action(rule.action, rule.count_towards_max_restarts)
    whole = failure.failure_class == FailureClass.HANG or framework == Framework.TENSORFLOW
    kind = FailureAction.RESTART_GANG if whole else FailureAction.RESTART_WORKER
    return Action(kind, failure.failure_class not in NOT_THE_JOBS_FAULT)


def severity(kind: FailureAction) -> int:
    """How far an action goes: the order of FailureAction (worker < gang < fail)."""
    return list(FailureAction).index(kind)


def most_severe(
    decided: list[tuple[WorkerFailure, Action]],
) -> tuple[WorkerFailure, Action] | None:
    """The failure whose action goes furthest (fail > gang > worker); ties go to the first."""
    if not decided:
        return None
    return max(decided, key=lambda pair: severity(pair[1].kind))  # max keeps the first of ties


def gang_backoff_seconds(failures_in_a_row: int) -> float:
    """Wait before a gang restart: none after one failure, then 2 s doubling up to 60 s for
    each further failure with no checkpoint committed in between (a crash loop)."""
    return 0.0 if failures_in_a_row <= 1 else float(min(60, 2 ** (failures_in_a_row - 1)))


def stalled_in_place(
    last_failure: LastFailure, timeout_seconds: int, progressed: bool, waited: float
) -> WorkerFailure | None:
    """The failure to escalate when replacing a worker in place did not bring training back:
    every worker has run for timeout_seconds since the failure and no step was completed."""
    if last_failure.action != FailureAction.RESTART_WORKER or progressed:
        return None
    if waited < timeout_seconds:
        return None
    pod = last_failure.pod
    message = (
        f"no training step within {timeout_seconds}s after {pod or 'a worker'} was replaced "
        f"(inPlaceTimeoutSeconds); first failure: {last_failure.message or '-'}"
    )[: failures.MAX_MESSAGE]
    return WorkerFailure(
        last_failure.failure_class,
        pod,
        last_failure.pod_uid,
        last_failure.exit_code,
        failures.IN_PLACE_TIMED_OUT,
        message,
    )


def decide_restart(
    job: DistributedTrainingJob,
    status: JobStatus,
    workers: Sequence[Pod],
    now: datetime,
    on_deleted: Mapping[str, str],
) -> RestartDecision:
    """Classify the failed workers of this attempt and act on the one whose action goes
    furthest, by spec.failurePolicy; one failure per pass, each acted on once (by pod uid).
    on_deleted: the pods bound to a deleted node, and that node."""
    kept = RestartDecision(status.restart_attempt or 0, status.restarts or 0)
    if job.spec.run_policy and job.spec.run_policy.suspend:
        return kept
    handled = status.last_failure.pod_uid if status.last_failure else None
    whole = job.spec.framework == Framework.TENSORFLOW
    failed = _failed_workers(workers, kept.attempt, on_deleted, job.spec.replicas if whole else 0)
    # A worker already replaced in place whose deletion did not happen yet (a crash between
    # the status write and the delete): finish the deletion, do not count it again.
    unfinished = tuple(
        pods.name_of(p) for p in failed if _handled(p, handled) and not pods.is_leaving(p)
    )
    kept = replace(kept, delete_pods=unfinished)
    policy = job.spec.failure_policy or FailurePolicy()
    fresh = [_classify(p, workers, on_deleted) for p in failed if not _handled(p, handled)]
    if status.hang is not None:  # reported by the progress poller; cleared when acted on
        fresh.append(failures.hang_failure(status.hang))
    framework = job.spec.framework
    picked = most_severe([(f, decide_action(policy, f, framework)) for f in fresh])
    if picked is None:
        picked, wake = _escalation(job, status, workers, now, kept.attempt)
        kept = replace(kept, wake_after=wake)
    if picked is None:
        return kept
    return _act(_Context(policy, status, picked[0], picked[1], now, kept))


def _failed_workers(
    workers: Sequence[Pod], attempt: int, on_deleted: Mapping[str, str], whole_of: int
) -> list[Pod]:
    """Workers of this attempt that failed, that the cluster is taking away, or whose node was
    deleted (on_deleted: pod name → node); for a group that restarts whole (whole_of: its size,
    0 for one that does not), also any of its workers being deleted."""
    return sorted(
        (
            w
            for w in workers
            if pods.in_attempt(w, attempt)
            and (
                _has_failed(w)
                or _lost_with_its_node(w, on_deleted)
                or (whole_of > 0 and _taken_from_group(w, workers, whole_of))
            )
        ),
        key=pods.name_of,
    )


def _has_failed(pod: Pod) -> bool:
    # A pod being deleted counts only when the cluster deletes it (eviction, preemption, a lost
    # node: DisruptionTarget); one the operator or a user deletes is already dealt with.
    if not pods.is_leaving(pod):
        return pods.phase_of(pod) == "Failed"
    return any(
        x.get("type") == "DisruptionTarget" and x.get("status") == "True"
        for x in (pod.get("status") or {}).get("conditions") or []
    )


def _lost_with_its_node(pod: Pod, on_deleted: Mapping[str, str]) -> bool:
    """A worker on a deleted node that was still to run: not finished, failed or leaving."""
    return (
        pods.name_of(pod) in on_deleted and not pods.is_finished(pod) and not pods.is_leaving(pod)
    )


def _taken_from_group(pod: Pod, workers: Sequence[Pod], size: int) -> bool:
    """A worker of the group being deleted before it finished, whose slot no other live pod of
    its attempt fills (that would make it a surplus copy, slots.py), by someone else than the
    cluster (_has_failed covers that): a user, or the operator replacing a straggler."""
    if not pods.is_leaving(pod) or pods.exited_cleanly(pod) or _has_failed(pod):
        return False
    if not 0 <= pods.index_of(pod) < size:
        return False  # scaled away: the new size restarts the group (lifecycle.py)
    same_slot = (
        w
        for w in workers
        if pods.attempt_of(w) == pods.attempt_of(pod) and pods.index_of(w) == pods.index_of(pod)
    )
    return not any(not pods.is_leaving(w) for w in same_slot)


def _classify(pod: Pod, workers: Sequence[Pod], on_deleted: Mapping[str, str]) -> WorkerFailure:
    if _lost_with_its_node(pod, on_deleted):
        return failures.node_deleted_failure(pod, on_deleted[pods.name_of(pod)])
    if pods.is_leaving(pod) and not _has_failed(pod):
        return failures.pod_deleted_failure(pod)  # _taken_from_group
    return failures.classify_failure(pod)


def _handled(pod: Pod, handled_uid: str | None) -> bool:
    return handled_uid is not None and pods.uid_of(pod) == handled_uid


def _escalation(
    job: DistributedTrainingJob,
    status: JobStatus,
    workers: Sequence[Pod],
    now: datetime,
    attempt: int,
) -> tuple[tuple[WorkerFailure, Action] | None, float | None]:
    """A gang restart when replacing a worker in place has not brought training back; else
    when to look again (the in-place timeout)."""
    last = status.last_failure
    if last is None or last.action != FailureAction.RESTART_WORKER or last.time is None:
        return None, None
    running_since = _all_running_since(workers, attempt, job.spec.replicas)
    if running_since is None:
        return None, None  # still waiting for a pod to be scheduled or started: not the group's
    stepped = status.progress.updated_at if status.progress else None
    if stepped is None:
        return None, None  # no progress reports from this job: the operator cannot judge
    progressed = stepped > last.time
    waited = (now - max(last.time, running_since)).total_seconds()
    timeout = (job.spec.failure_policy or FailurePolicy()).in_place_timeout_seconds
    failure = stalled_in_place(last, timeout, progressed, waited)
    if failure is None:
        return None, None if progressed else max(timeout - waited, 0.0) + 1.0
    # Counted with the failure it follows.
    return (failure, Action(FailureAction.RESTART_GANG, counts=False)), None


def _all_running_since(workers: Sequence[Pod], attempt: int, replicas: int) -> datetime | None:
    """When the last of the attempt's workers started running, if all of them run."""
    started = [pods.running_since(w) for w in pods.current_workers(workers, attempt)]
    if len(started) < replicas or None in started:
        return None
    return max(s for s in started if s is not None)


@dataclass(frozen=True)
class _Context:
    """One failure picked for action, and what the handler needs to decide."""

    policy: FailurePolicy
    status: JobStatus
    failure: WorkerFailure
    action: Action
    now: datetime
    kept: RestartDecision  # the decision so far: attempt, restarts, unfinished deletions


def _act(ctx: _Context) -> RestartDecision:
    """Hand the failure to its action's handler."""
    return ACTION_HANDLERS[ctx.action.kind](ctx)


def _out_of_restarts(ctx: _Context) -> RestartDecision | None:
    """The job's failure when this restart would count and every restart is used up."""
    max_restarts = ctx.policy.max_restarts
    if not ctx.action.counts or ctx.kept.restarts < max_restarts:
        return None
    message = f"{failures.describe(ctx.failure)} and all {max_restarts} restarts are used up"
    return _failing(ctx, c.REASON_MAX_RESTARTS_EXCEEDED, message)


def _fail_job(ctx: _Context) -> RestartDecision:
    klass = ctx.failure.failure_class
    message = f"{failures.describe(ctx.failure)}: the failure policy fails the job on {klass}"
    return _failing(ctx, c.REASON_FAILED_BY_POLICY, message)


def _restart_gang(ctx: _Context) -> RestartDecision:
    if (used_up := _out_of_restarts(ctx)) is not None:
        return used_up
    in_a_row = _failures_in_a_row(ctx.status)
    wait = _backoff_left(ctx.status, in_a_row, ctx.now)
    if wait > 0:
        return replace(ctx.kept, wake_after=wait)
    decided = _restarting(ctx, in_a_row, "restarting the gang")
    return replace(decided, attempt=decided.attempt + 1)


def _restart_worker(ctx: _Context) -> RestartDecision:
    if (used_up := _out_of_restarts(ctx)) is not None:
        return used_up
    decided = _restarting(ctx, _failures_in_a_row(ctx.status), "replacing that worker")
    return replace(decided, delete_pods=(*decided.delete_pods, ctx.failure.pod))


Handler = Callable[[_Context], RestartDecision]
ACTION_HANDLERS: Final[Mapping[FailureAction, Handler]] = {
    FailureAction.RESTART_WORKER: _restart_worker,
    FailureAction.RESTART_GANG: _restart_gang,
    FailureAction.FAIL_JOB: _fail_job,
}


def _restarting(ctx: _Context, in_a_row: int, doing: str) -> RestartDecision:
    """The record, counters and event of a restart (a worker's or the gang's)."""
    failure, status = ctx.failure, ctx.status
    by_class = dict(status.restarts_by_class or {})
    by_class[failure.failure_class] = by_class.get(failure.failure_class, 0) + 1
    restarts = ctx.kept.restarts + int(ctx.action.counts)
    hung = failure.failure_class == FailureClass.HANG
    reason = c.REASON_HANG_DETECTED if hung else c.REASON_WORKER_FAILED
    budget = _budget(ctx.policy, failure, ctx.action, restarts)
    record = _last_failure(failure, ctx.action.kind, ctx.now).model_copy(
        update={"steps_lost": _steps_lost(status), "in_a_row": in_a_row}
    )
    return replace(
        ctx.kept,
        restarts=restarts,
        event=Event("Warning", reason, f"{failures.describe(failure)}: {doing} ({budget})"),
        last_failure=record,
        restarts_by_class=by_class,
        clear_hang=hung,
    )


def _failing(ctx: _Context, reason: str, message: str) -> RestartDecision:
    record = _last_failure(ctx.failure, FailureAction.FAIL_JOB, ctx.now)
    failure = JobFailure(reason, message)
    return replace(ctx.kept, failure=failure, last_failure=record, clear_hang=True)


def _last_failure(failure: WorkerFailure, action: FailureAction, now: datetime) -> LastFailure:
    record = {
        "class": failure.failure_class,
        "pod": failure.pod,
        "podUID": failure.uid,
        "exitCode": failure.exit_code,
        "reason": failure.reason or None,
        "message": failure.message or None,
        "action": action,
        "time": truncate_to_second(now),
    }
    return LastFailure.model_validate(record)


def _budget(policy: FailurePolicy, failure: WorkerFailure, action: Action, restarts: int) -> str:
    """How the restart counts towards maxRestarts, for the event."""
    if action.counts:
        return f"restart {restarts} of {policy.max_restarts}"
    if failure.reason == failures.IN_PLACE_TIMED_OUT:
        return "counted with the failure it follows"
    return f"not counted towards maxRestarts: {failure.failure_class}"


def _failures_in_a_row(status: JobStatus) -> int:
    """This failure and those before it with no checkpoint committed in between."""
    last = status.last_failure
    previous = last.time if last else None
    checkpointed = status.checkpoint.time if status.checkpoint else None
    if last is None or previous is None or (checkpointed is not None and checkpointed > previous):
        return 1
    return (last.in_a_row or 1) + 1


def _steps_lost(status: JobStatus) -> int | None:
    """Steps since the newest checkpoint: the restarted group trains them again."""
    step = status.progress.step if status.progress else None
    saved = (status.checkpoint.step if status.checkpoint else None) or 0
    return max(step - saved, 0) if step is not None else None


def _backoff_left(status: JobStatus, in_a_row: int, now: datetime) -> float:
    """Seconds until the next gang restart may start, measured from the previous recovery."""
    previous = status.last_failure.time if status.last_failure else None
    if previous is None:
        return 0.0
    delay = gang_backoff_seconds(in_a_row)
    return max((previous - now).total_seconds() + delay, 0.0)
