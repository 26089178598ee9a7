"""Observe → decide → act for one job. Level-triggered and idempotent.

`plan_reconcile` is pure: from the job and the children the operator can see, it computes what
should be created, deleted and written. `execute_plan` carries a plan out through kube.KubeApi.
Running the pair twice changes nothing the second time, and a crash between any two writes is
repaired by the next run: every child has a deterministic name, and the restart attempt, the only
decision that is not derived from the pods, is written to status before the children follow it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ringleader import builders, gang, lostnodes, recovery, startup, workerenv
from ringleader import constants as c
from ringleader.kube import KubeApi
from ringleader.models import DistributedTrainingJob, FailurePolicy
from ringleader.progress import plan_progress_patch, read_final_report
from ringleader.status import Failure, compute_status, format_time, parse_time

Obj = dict[str, Any]


@dataclass
class Plan:
    """What one reconcile does, in the order it is done."""

    status_patch: Obj | None = None
    delete_pods: list[str] = field(default_factory=list)
    create: list[Obj] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # type, reason, message
    delete_job: bool = False
    requeue_after: float | None = None  # seconds until time alone changes the decision
    force_delete_pods: list[str] = field(default_factory=list)  # stuck on a lost node
    pod_group: Obj | None = None  # created or brought up to date before workers are created


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _is_worker(obj: Obj) -> bool:
    return obj.get("kind") == "Pod" and _labels(obj).get(c.LABEL_ROLE) == c.ROLE_WORKER


def _is_active_pod(obj: Obj) -> bool:
    """A pod not yet finished and not already being deleted."""
    if obj.get("kind") != "Pod" or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _deadline_failure(job: DistributedTrainingJob, status: Obj, now: datetime) -> Failure | None:
    deadline = job.spec.run_policy.active_deadline_seconds if job.spec.run_policy else None
    started = parse_time(status.get("startTime"))
    if deadline is None or started is None or now < started + timedelta(seconds=deadline):
        return None
    return Failure(c.REASON_DEADLINE_EXCEEDED, f"the job ran longer than {deadline}s")


def _startup_failure(
    job: DistributedTrainingJob, workers: Sequence[Obj], now: datetime, verdict: _Verdict
) -> Failure | None:
    why, wait = startup.startup_timeout(job, workers, verdict.attempt, now)
    verdict.requeue_after = _sooner(verdict.requeue_after, None if wait is None else wait + 1.0)
    return Failure(c.REASON_STARTUP_TIMEOUT, why) if why else None


def _gang_failure(
    job: DistributedTrainingJob, workers: Sequence[Obj], verdict: _Verdict, served: bool
) -> Failure | None:
    """A gang job whose scheduler's PodGroup API is missing fails before it creates workers
    that no scheduler would bind; workers already running are left alone."""
    api = gang.api_of(job)
    if api is None or served:
        return None
    current = [
        w for w in workers if _labels(w).get(c.LABEL_RESTART_ATTEMPT) == str(verdict.attempt)
    ]
    if len(current) >= job.spec.replicas:
        return None
    return Failure(c.REASON_GANG_UNAVAILABLE, gang.describe_missing(api))


def _failed_workers(
    workers: Sequence[Obj], attempt: int, on_deleted: Mapping[str, str]
) -> list[Obj]:
    """Workers of this attempt that failed, that the cluster is taking away, or whose node was
    deleted (on_deleted: pod name → node)."""
    return sorted(
        (
            w
            for w in workers
            if _labels(w).get(c.LABEL_RESTART_ATTEMPT) == str(attempt)
            and (_has_failed(w) or _lost_with_its_node(w, on_deleted))
        ),
        key=lambda w: str(w["metadata"]["name"]),
    )


def _has_failed(pod: Obj) -> bool:
    # A pod being deleted counts only when the cluster deletes it (eviction, preemption, a lost
    # node: DisruptionTarget); one the operator or a user deletes is already dealt with.
    status = pod.get("status") or {}
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return status.get("phase") == "Failed"
    return any(
        x.get("type") == "DisruptionTarget" and x.get("status") == "True"
        for x in status.get("conditions") or []
    )


@dataclass
class _Verdict:
    attempt: int
    restarts: int
    failure: Failure | None = None
    event: tuple[str, str, str] | None = None
    recovery: Obj = field(default_factory=dict)  # lastFailure, restartsByClass when they change
    delete_pods: list[str] = field(default_factory=list)  # failed pods RestartWorker replaces
    requeue_after: float | None = None  # until a gang restart's backoff has passed


def decide_restart(
    job: DistributedTrainingJob,
    status: Obj,
    workers: Sequence[Obj],
    now: datetime,
    on_deleted: Mapping[str, str],
) -> _Verdict:
    """Classify the failed workers of this attempt and act on the one whose action goes
    furthest, by spec.failurePolicy; one failure per pass, each acted on once (by pod uid).
    on_deleted: the pods bound to a deleted node, and that node."""
    verdict = _Verdict(status.get("restartAttempt") or 0, status.get("restarts") or 0)
    if job.spec.run_policy and job.spec.run_policy.suspend:
        return verdict
    handled = (status.get("lastFailure") or {}).get("podUID")
    failed = _failed_workers(workers, verdict.attempt, on_deleted)
    # A worker already replaced in place whose deletion did not happen yet (a crash between
    # the status write and the delete): finish the deletion, do not count it again.
    verdict.delete_pods = [
        p["metadata"]["name"]
        for p in failed
        if _handled(p, handled) and not p["metadata"].get("deletionTimestamp")
    ]
    policy = job.spec.failure_policy or FailurePolicy()
    fresh = [_classify(p, on_deleted) for p in failed if not _handled(p, handled)]
    if status.get("hang"):  # reported by the progress watcher; cleared when acted on
        fresh.append(recovery.hang_failure(status["hang"]))
    picked = recovery.most_severe([(f, recovery.decide_action(policy, f)) for f in fresh])
    if picked is None:
        picked = _escalation(job, status, workers, now, verdict)
    return _act(policy, status, picked, now, verdict) if picked else verdict


def _lost_with_its_node(pod: Obj, on_deleted: Mapping[str, str]) -> bool:
    """A worker on a deleted node that was still to run: not finished, failed or leaving."""
    phase = (pod.get("status") or {}).get("phase")
    leaving = pod["metadata"].get("deletionTimestamp")
    return (
        pod["metadata"]["name"] in on_deleted
        and phase not in ("Succeeded", "Failed")
        and not leaving
    )


def _classify(pod: Obj, on_deleted: Mapping[str, str]) -> recovery.WorkerFailure:
    if _lost_with_its_node(pod, on_deleted):
        return recovery.node_deleted_failure(pod, on_deleted[pod["metadata"]["name"]])
    return recovery.classify_failure(pod)


def _escalation(
    job: DistributedTrainingJob,
    status: Obj,
    workers: Sequence[Obj],
    now: datetime,
    verdict: _Verdict,
) -> tuple[recovery.WorkerFailure, recovery.Action] | None:
    """A gang restart when replacing a worker in place has not brought training back."""
    last = status.get("lastFailure") or {}
    failed_at = parse_time(last.get("time"))
    if last.get("action") != "RestartWorker" or failed_at is None:
        return None
    running_since = _all_running_since(workers, verdict.attempt, job.spec.replicas)
    if running_since is None:
        return None  # still waiting for a pod to be scheduled or started: not the group's fault
    stepped = parse_time((status.get("progress") or {}).get("updatedAt"))
    if stepped is None:
        return None  # no progress reports from this job: the operator cannot judge
    progressed = stepped > failed_at
    waited = (now - max(failed_at, running_since)).total_seconds()
    timeout = (job.spec.failure_policy or FailurePolicy()).in_place_timeout_seconds
    failure = recovery.stalled_in_place(last, timeout, progressed, waited)
    if failure is None:
        if not progressed:
            verdict.requeue_after = max(timeout - waited, 0.0) + 1.0
        return None
    return failure, recovery.Action("RestartGang", counts=False)  # counted with the first failure


def _all_running_since(workers: Sequence[Obj], attempt: int, replicas: int) -> datetime | None:
    """When the last of the attempt's workers started running, if all of them run."""
    current = [
        w
        for w in workers
        if _labels(w).get(c.LABEL_RESTART_ATTEMPT) == str(attempt)
        and not w["metadata"].get("deletionTimestamp")
    ]
    started = [_running_since(w) for w in current]
    if len(started) < replicas or None in started:
        return None
    return max(s for s in started if s is not None)


def _running_since(pod: Obj) -> datetime | None:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return None
    for container in status.get("containerStatuses") or []:
        started = ((container.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            return parse_time(started)
    return parse_time(status.get("startTime"))


def _restart_at_new_size(
    job: DistributedTrainingJob, workers: Sequence[Obj], verdict: _Verdict
) -> None:
    """A fixed-size job scaled to another size: its workers' rendezvous was set up for exactly
    the old size, so the gang restarts from its checkpoint at the new one (not a failure).
    An elastic job's workers accept any size between its bounds: pods just come and go."""
    if job.spec.elastic is not None or verdict.event is not None or verdict.failure is not None:
        return
    wanted = workerenv.compute_nnodes(job.spec)
    told = {
        _nnodes_of(w)
        for w in workers
        if _labels(w).get(c.LABEL_RESTART_ATTEMPT) == str(verdict.attempt)
        and not w["metadata"].get("deletionTimestamp")
    } - {None}
    if not told or told == {wanted}:
        return
    verdict.attempt += 1
    old = ", ".join(sorted(str(n).split(":")[0] for n in told))
    message = (
        f"scaled from {old} to {job.spec.replicas} workers: the gang restarts from its newest "
        f"checkpoint at the new size (a fixed-size job; spec.elastic resizes in place)"
    )
    verdict.event = ("Normal", c.REASON_RESCALED, message)


def _nnodes_of(pod: Obj) -> str | None:
    """The PET_NNODES a worker pod was started with."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for var in containers[0].get("env") or []:
        if var.get("name") == c.ENV_PET_NNODES:
            return str(var.get("value"))
    return None


def _handled(pod: Obj, handled_uid: str | None) -> bool:
    return handled_uid is not None and pod["metadata"].get("uid") == handled_uid


def _act(
    policy: FailurePolicy,
    status: Obj,
    picked: tuple[recovery.WorkerFailure, recovery.Action],
    now: datetime,
    verdict: _Verdict,
) -> _Verdict:
    """Carry the chosen action into the verdict: fail, or restart a worker or the gang."""
    failure, action = picked
    what, klass = recovery.describe(failure), failure.failure_class
    if action.kind == "FailJob":
        message = f"{what}: the failure policy fails the job on {klass}"
        return _failing(verdict, c.REASON_FAILED_BY_POLICY, message, failure, now)
    if action.counts and verdict.restarts >= policy.max_restarts:
        message = f"{what} and all {policy.max_restarts} restarts are used up"
        return _failing(verdict, c.REASON_BACKOFF_LIMIT_EXCEEDED, message, failure, now)
    in_a_row = _failures_in_a_row(status)
    wait = _backoff_left(status, in_a_row, now) if action.kind == "RestartGang" else 0.0
    if wait > 0:
        verdict.requeue_after = wait
        return verdict
    by_class = dict(status.get("restartsByClass") or {})
    by_class[klass] = by_class.get(klass, 0) + 1
    verdict.restarts += action.counts
    budget = _budget(policy, failure, action, verdict.restarts)
    if action.kind == "RestartWorker":
        verdict.delete_pods.append(failure.pod)
        doing = "replacing that worker"
    else:
        verdict.attempt += 1
        doing = "restarting the gang"
    hung = klass == "Hang"
    reason = c.REASON_HANG_DETECTED if hung else c.REASON_WORKER_FAILED
    verdict.event = ("Warning", reason, f"{what}: {doing} ({budget})")
    verdict.recovery = {
        "lastFailure": {
            **_last_failure(failure, action.kind, now),
            "stepsLost": _steps_lost(status),
            "inARow": in_a_row,
        },
        "restartsByClass": by_class,
        **({"hang": None} if hung else {}),
    }
    return verdict


def _failing(
    verdict: _Verdict, reason: str, message: str, failure: recovery.WorkerFailure, now: datetime
) -> _Verdict:
    verdict.failure = Failure(reason, message)
    verdict.recovery = {"lastFailure": _last_failure(failure, "FailJob", now), "hang": None}
    return verdict


def _last_failure(failure: recovery.WorkerFailure, action: str, now: datetime) -> Obj:
    # Every key present, None included: as a merge patch, None clears the previous failure's.
    return {
        "class": failure.failure_class,
        "pod": failure.pod,
        "podUID": failure.uid,
        "exitCode": failure.exit_code,
        "reason": failure.reason or None,
        "message": failure.message or None,
        "action": action,
        "time": format_time(now),
    }


def _budget(
    policy: FailurePolicy, failure: recovery.WorkerFailure, action: recovery.Action, restarts: int
) -> str:
    """How the restart counts towards maxRestarts, for the event."""
    if action.counts:
        return f"restart {restarts} of {policy.max_restarts}"
    if failure.reason == recovery.IN_PLACE_TIMED_OUT:
        return "counted with the failure it follows"
    return f"not counted towards maxRestarts: {failure.failure_class}"


def _failures_in_a_row(status: Obj) -> int:
    """This failure and those before it with no checkpoint committed in between."""
    last = status.get("lastFailure") or {}
    previous = parse_time(last.get("time"))
    checkpointed = parse_time((status.get("checkpoint") or {}).get("time"))
    if previous is None or (checkpointed is not None and checkpointed > previous):
        return 1
    return int(last.get("inARow") or 1) + 1


def _steps_lost(status: Obj) -> int | None:
    """Steps since the newest checkpoint: the restarted group trains them again."""
    step = (status.get("progress") or {}).get("step")
    saved = (status.get("checkpoint") or {}).get("step", 0)
    return max(int(step) - int(saved), 0) if step is not None else None


def _backoff_left(status: Obj, in_a_row: int, now: datetime) -> float:
    """Seconds until the next gang restart may start, measured from the previous recovery."""
    previous = parse_time((status.get("lastFailure") or {}).get("time"))
    if previous is None:
        return 0.0
    delay = recovery.gang_backoff_seconds(in_a_row)
    return max((previous - now).total_seconds() + delay, 0.0)


def _with_attempt(job: DistributedTrainingJob, status: Obj, attempt: int) -> DistributedTrainingJob:
    """The job as the status computation should see it: with the decided restart attempt."""
    data = job.model_dump(by_alias=True, mode="json", exclude_none=True)
    data["status"] = {**status, "restartAttempt": attempt}
    return DistributedTrainingJob.model_validate(data)


def _desired_children(job: DistributedTrainingJob, attempt: int) -> list[Obj]:
    children = [
        builders.build_workers_service(job),
        builders.build_store_service(job),
        builders.build_store_pod(job),
        *builders.build_worker_pods(job, attempt),
    ]
    claim = builders.build_checkpoint_claim(job)
    return [claim, *children] if claim else children


def _unwanted_worker(pod: Obj, attempt: int, replicas: int) -> bool:
    labels = _labels(pod)
    index = int(labels.get(c.LABEL_REPLICA_INDEX, "-1"))
    return labels.get(c.LABEL_RESTART_ATTEMPT) != str(attempt) or not 0 <= index < replicas


def plan_children(
    job: DistributedTrainingJob, attempt: int, phase: str, children: Sequence[Obj]
) -> tuple[list[Obj], list[str]]:
    """Children to create and pods to delete for the decided attempt and phase."""
    pods = [x for x in children if x.get("kind") == "Pod"]
    if phase in c.TERMINAL_PHASES or phase == c.PHASE_SUSPENDED:
        # Finished pods stay for their logs; whatever still runs goes. Services and the
        # checkpoint volume stay until the job is deleted.
        return [], sorted(p["metadata"]["name"] for p in pods if _is_active_pod(p))
    existing = {(x.get("kind"), x["metadata"]["name"]) for x in children}
    create = [
        x
        for x in _desired_children(job, attempt)
        if (x["kind"], x["metadata"]["name"]) not in existing
    ]
    delete = sorted(
        p["metadata"]["name"]
        for p in pods
        if _is_worker(p)
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        and _unwanted_worker(p, attempt, job.spec.replicas)
    )
    return create, delete


def _status_patch(old: Obj, new: Obj) -> Obj | None:
    """The keys of new that differ from old (a merge patch), or None when nothing changed."""
    patch = {key: value for key, value in new.items() if old.get(key) != value}
    return patch or None


def _phase_event(old_phase: str | None, new: Obj) -> tuple[str, str, str] | None:
    phase = new["phase"]
    if phase == old_phase:
        return None
    # Every condition carries the reason and message of the decision behind the phase.
    own = new["conditions"][0]
    warning = phase in (c.PHASE_FAILED, c.PHASE_RESTARTING)
    return ("Warning" if warning else "Normal", own["reason"], f"{phase}: {own['message']}")


def _time_left(job: DistributedTrainingJob, new: Obj, now: datetime) -> tuple[bool, float | None]:
    """(delete the job now?, seconds until a deadline or TTL expires)."""
    policy = job.spec.run_policy
    if policy is None:
        return False, None
    finished = parse_time(new.get("completionTime"))
    if new["phase"] in c.TERMINAL_PHASES:
        if policy.ttl_seconds_after_finished is None or finished is None:
            return False, None
        left = (finished - now).total_seconds() + policy.ttl_seconds_after_finished
        return left <= 0, max(left, 0.0)
    started = parse_time(new.get("startTime"))
    if policy.active_deadline_seconds is None or started is None:
        return False, None
    return False, max((started - now).total_seconds() + policy.active_deadline_seconds, 0.0)


def plan_reconcile(
    body: Obj,
    children: Sequence[Obj],
    now: datetime,
    lost_nodes: Collection[str] = (),
    pod_groups_served: bool = True,
    *,
    deleted_nodes: Collection[str] = (),
) -> Plan:
    """Decide everything one reconcile of this job does (pure). lost_nodes: the nodes, among
    those of pods stuck terminating (lostnodes.nodes_to_check), found NotReady or gone;
    pod_groups_served: whether the cluster serves the PodGroup API of a gang job's scheduler;
    deleted_nodes: nodes of its pods that the node watch saw deleted and are still gone."""
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return Plan()  # the garbage collector removes the children through their owner references
    job = builders.parse_job(body)
    status: Obj = dict(body.get("status") or {})
    workers = [x for x in children if _is_worker(x)]
    on_deleted = lostnodes.on_deleted_nodes(children, deleted_nodes)
    verdict = _Verdict(status.get("restartAttempt") or 0, status.get("restarts") or 0)
    if status.get("phase") not in c.TERMINAL_PHASES:
        verdict = decide_restart(job, status, workers, now, on_deleted)
        verdict.failure = verdict.failure or _deadline_failure(job, status, now)
        verdict.failure = verdict.failure or _startup_failure(job, workers, now, verdict)
        verdict.failure = verdict.failure or _gang_failure(job, workers, verdict, pod_groups_served)
        _restart_at_new_size(job, workers, verdict)
    seen = _with_attempt(job, status, verdict.attempt)
    new = compute_status(seen, workers, now, verdict.failure)
    new.update(restartAttempt=verdict.attempt, restarts=verdict.restarts, **verdict.recovery)
    new.update(_final_progress(status, new, workers, verdict.attempt))
    create, delete = plan_children(seen, verdict.attempt, new["phase"], children)
    delete = sorted({*delete, *verdict.delete_pods})
    delete_job, requeue_after = _time_left(job, new, now)
    requeue_after = _sooner(requeue_after, verdict.requeue_after)
    events = [e for e in (verdict.event, _phase_event(status.get("phase"), new)) if e]
    plan = Plan(_status_patch(status, new), delete, create, events, delete_job, requeue_after)
    if any(_is_worker(x) for x in create):  # the group must be current before they join it
        plan.pod_group = builders.build_pod_group(job)
    return _with_force_deletions(plan, children, lost_nodes, on_deleted, now)


def _final_progress(status: Obj, new: Obj, workers: Sequence[Obj], attempt: int) -> Obj:
    """The workers' last report, written with the phase that ends the job: the poller would
    mirror it a poll later, and until then `kubectl get dtj` would show an older step."""
    if new["phase"] not in c.TERMINAL_PHASES or status.get("phase") in c.TERMINAL_PHASES:
        return {}
    return plan_progress_patch(status, read_final_report(workers, attempt)) or {}


def _with_force_deletions(
    plan: Plan,
    children: Sequence[Obj],
    lost_nodes: Collection[str],
    on_deleted: Mapping[str, str],
    now: datetime,
) -> Plan:
    """Add the pods stuck terminating on a lost node and those on a deleted node (instead of a
    graceful deletion: no kubelet would carry it out), and when to look at deleting pods again."""
    pods = [x for x in children if x.get("kind") == "Pod"]
    doomed = dict(lostnodes.force_deletions(pods, lost_nodes, now))
    for pod, node in on_deleted.items():
        doomed.setdefault(pod, f"pod {pod} was on node {node}, which was deleted: force-deleted")
    for pod, why in sorted(doomed.items()):
        plan.force_delete_pods.append(pod)
        plan.events.append(("Warning", c.REASON_POD_FORCE_DELETED, why))
    plan.delete_pods = [p for p in plan.delete_pods if p not in doomed]
    plan.requeue_after = _sooner(plan.requeue_after, lostnodes.seconds_until_next_check(pods, now))
    return plan


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def execute_plan(api: KubeApi, body: Obj, plan: Plan) -> list[Obj]:
    """Carry out a plan: status first, then events, deletions, creations. Returns what it made.

    Events follow the status at once: the status is the durable record of a decision, and the
    next pass does not decide (or announce) it again, so an event is lost only when the
    operator dies between these two writes.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if plan.status_patch:
        api.patch_job_status(namespace, name, plan.status_patch)
    for event_type, reason, message in plan.events:
        api.post_event(body, event_type, reason, message)
    for pod in plan.delete_pods:
        api.delete_pod(namespace, pod)
    for pod in plan.force_delete_pods:
        api.delete_pod(namespace, pod, grace_period_seconds=0)
    if plan.pod_group:
        api.apply_pod_group(plan.pod_group)
    created = [obj for obj in plan.create if api.create(obj)]
    if plan.delete_job:
        api.delete_job(namespace, name)
    return created


def job_key_of_child(child: Obj) -> tuple[str, str] | None:
    """(namespace, job name) of the job a child belongs to, from its labels."""
    job_name = _labels(child).get(c.LABEL_JOB_NAME)
    namespace = (child.get("metadata") or {}).get("namespace")
    return (namespace, job_name) if job_name and namespace else None
