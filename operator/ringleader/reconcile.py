"""Observe → decide → act for one job. Level-triggered and idempotent.

`plan_reconcile` is pure (but for the random token of a new worker pod's name): from the job and
the children the operator can see, it computes what should be created, deleted and written.
`execute_plan` carries a plan out through kube.KubeApi. Running the pair twice changes nothing
the second time, and a crash between any two writes is repaired by the next run: every other
child has a deterministic name, a worker is created only into an empty slot (slots.py) and a slot
filled twice is brought back to one pod, and the restart attempt, the only decision that is not
derived from the pods, is written to status before the children follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ringleader import (
    builders,
    failurepolicy,
    gang,
    lifecycle,
    lostnodes,
    naming,
    pods,
    queueing,
    rendezvous,
    slots,
    status,
    stragglers,
    validation,
)
from ringleader import constants as c
from ringleader import kueueworkload as kw
from ringleader.apitime import truncate_to_second
from ringleader.constants import Framework, Phase
from ringleader.decisions import Event, JobFailure, sooner
from ringleader.failurepolicy import RestartDecision
from ringleader.kube import CreationRefused, KubeApi, RetryableError
from ringleader.models import DistributedTrainingJob, InvalidJob, parse_job
from ringleader.progress import apply_report, read_final_report
from ringleader.queueing import NO_KUEUE_FACTS, KueueFacts
from ringleader.statusmodels import CreationRefusal, JobStatus, plan_status_patch

Obj = dict[str, Any]


@dataclass
class Plan:
    """What one reconcile does, in the order it is done."""

    status_patch: Obj | None = None
    delete_pods: list[str] = field(default_factory=list)
    create: list[Obj] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False
    requeue_after: float | None = None  # seconds until time alone changes the decision
    force_delete_pods: list[str] = field(default_factory=list)  # stuck on a lost node
    pod_group: Obj | None = None  # created or brought up to date before workers are created
    workload: Obj | None = None  # Kueue's Workload for a queued job, created once
    workload_status_patch: Obj | None = None  # the Workload's quota given back, or Finished


def plan_reconcile(
    body: Obj,
    children: Sequence[Obj],
    now: datetime,
    lost_nodes: Collection[str] = (),
    pod_groups_served: bool = True,
    *,
    deleted_nodes: Collection[str] = (),
    kueue: KueueFacts = NO_KUEUE_FACTS,
) -> Plan:
    """Decide everything one reconcile of this job does (pure). lost_nodes: the nodes, among
    those of pods stuck terminating (lostnodes.nodes_to_check), found NotReady or gone;
    pod_groups_served: whether the cluster serves the PodGroup API of a gang job's scheduler;
    deleted_nodes: nodes of its pods that the node watch saw deleted and are still gone;
    kueue: what a job queued with Kueue needs from outside its objects (queueing.py)."""
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return Plan()  # the garbage collector removes the children through their owner references
    try:
        job = parse_job(body)
    except InvalidJob as invalid:
        return plan_unparsable_job(body, invalid, now)
    old = job.status or JobStatus()
    gated = queueing.gate(job, children, kueue, now)
    job = gated.job  # as Kueue lets it run: held (as if suspended), or as admitted
    # A slot's surplus pods (slots.py) are deleted below: decided on as if leaving already.
    workers = [x for x in children if pods.is_worker(x)]
    workers = slots.without_surplus(workers, old.restart_attempt or 0)
    on_deleted = lostnodes.on_deleted_nodes(children, deleted_nodes)
    decided = decide(job, workers, now, on_deleted=on_deleted, served=pod_groups_served)
    if _refusal_over(job, decided.attempt, children):
        job = job.model_copy(update={"status": old.model_copy(update={"refusal": None})})
    pod_group = gang.find_pod_group(children)
    new = status_after(job, workers, now, decided, pod_group=pod_group, queued=gated.queued)
    create, delete = plan_children(job, decided.attempt, new.phase, children)
    if made := _workers_made(job, create):
        # Written before they are made, the status counts them already, as the Pending pods
        # they are a moment later: not "no worker pod exists yet", then a patch and an event
        # more to say what the very next pass sees.
        seen = [*workers, *made]
        new = status_after(job, seen, now, decided, pod_group=pod_group, queued=gated.queued)
    delete_job, expires_in = lifecycle.plan_expiry(job, new, now)
    new, replaced, replacing = replace_stragglers(job, new, workers)
    plan = Plan(
        status_patch=plan_status_patch(old, new),
        delete_pods=sorted({*delete, *decided.delete_pods, *replaced}),
        create=create,
        events=[e for e in (decided.event, phase_event(old.phase, new), *replacing) if e],
        delete_job=delete_job,
        requeue_after=sooner(expires_in, decided.wake_after),
    )
    if any(pods.is_worker(x) for x in create):  # the group must be current before they join it
        plan.pod_group = builders.build_pod_group(job)
    plan.workload = gated.create
    ended = f"the job {str(new.phase).lower()}"
    finished = queueing.finished_patch(job, children, new.phase, ended, now)
    plan.workload_status_patch = gated.status_patch or finished
    return with_force_deletions(plan, children, lost_nodes, on_deleted, now)


def decide(
    job: DistributedTrainingJob,
    workers: Sequence[Obj],
    now: datetime,
    *,
    on_deleted: Mapping[str, str],
    served: bool,
) -> RestartDecision:
    """The restart attempt, counters, failure and event of this pass, one step after another:
    a finished job stays as it is; a job that would make broken pods fails; failed workers are
    acted on by the failure policy; then the limits (deadline, startup, gang scheduler); then a
    fixed-size job scaled restarts at its new size. on_deleted: pods on deleted nodes → node;
    served: whether a gang job's PodGroup API is served."""
    old = job.status or JobStatus()
    kept = RestartDecision(old.restart_attempt or 0, old.restarts or 0)
    if old.phase in c.TERMINAL_PHASES:
        return kept
    problems = validation.validate_job(job)
    if problems:
        return replace(kept, failure=JobFailure(c.REASON_INVALID_JOB, "; ".join(problems)))
    if old.refusal is not None and old.refusal.lasting:
        return replace(kept, failure=JobFailure(c.REASON_CREATION_REFUSED, old.refusal.message))
    decided = failurepolicy.decide_restart(job, old, workers, now, on_deleted)
    if decided.failure is None:
        decided = first_limit_reached(job, workers, now, decided, served=served)
    if decided.failure is None and decided.event is None:
        resized = lifecycle.restart_at_new_size(job, workers, decided.attempt)
        if resized is not None:
            decided = replace(decided, attempt=resized.attempt, event=resized.event)
    return decided


def first_limit_reached(
    job: DistributedTrainingJob,
    workers: Sequence[Obj],
    now: datetime,
    decided: RestartDecision,
    *,
    served: bool,
) -> RestartDecision:
    """The decision with the first of the job's limits that is reached (its failure), and the
    soonest time at which one of those looked at could be."""
    old = job.status or JobStatus()
    steps: tuple[Callable[[], lifecycle.Check], ...] = (
        lambda: lifecycle.check_deadline(job, old, now),
        lambda: lifecycle.check_startup(job, workers, decided.attempt, now),
        lambda: lifecycle.check_gang(job, workers, decided.attempt, served),
    )
    wake = decided.wake_after
    for step in steps:
        check = step()
        wake = sooner(wake, check.wake_after)
        if check.failure is not None:
            return replace(decided, failure=check.failure, wake_after=wake)
    return replace(decided, wake_after=wake)


def status_after(
    job: DistributedTrainingJob,
    workers: Sequence[Obj],
    now: datetime,
    decided: RestartDecision,
    *,
    pod_group: Mapping[str, Any] | None = None,
    queued: tuple[str, str] | None = None,
) -> JobStatus:
    """The job's status once the decision is taken: phase and counters from the pods (and why a
    gang waits, from its PodGroup; why Kueue holds it), the decision's record, and the workers'
    last report when the phase ends the job."""
    old = job.status or JobStatus()
    new = status.compute_status(
        job, workers, now, decided.failure, decided.attempt, pod_group=pod_group, queued=queued
    )
    update: dict[str, Any] = {"restart_attempt": decided.attempt, "restarts": decided.restarts}
    if decided.last_failure is not None:
        update["last_failure"] = decided.last_failure
    if decided.restarts_by_class is not None:
        update["restarts_by_class"] = decided.restarts_by_class
    if decided.clear_hang:
        update["hang"] = None
    new = new.model_copy(update=update)
    if new.phase in c.TERMINAL_PHASES and old.phase not in c.TERMINAL_PHASES:
        # The poller would mirror the last report a poll later, and until then `kubectl get
        # dtj` would show an older step.
        new = apply_report(new, read_final_report(workers, decided.attempt))
    return new


def _workers_made(job: DistributedTrainingJob, create: Sequence[Obj]) -> list[Obj]:
    """The worker pods among what this pass creates; none while a refusal stands (a quota):
    those are likely refused again, and the status says the job waits for them."""
    if job.status is not None and job.status.refusal is not None:
        return []
    return [x for x in create if pods.is_worker(x)]


def _refusal_over(job: DistributedTrainingJob, attempt: int, children: Sequence[Obj]) -> bool:
    """A refusal that could pass (a quota) is over once every child the job needs exists."""
    refusal = job.status.refusal if job.status else None
    if refusal is None or refusal.lasting:
        return False
    missing, _ = plan_children(job, attempt, Phase.RUNNING, children)
    return not missing


def plan_refusal(
    body: Obj, refused: CreationRefused, now: datetime, children: Sequence[Obj] = ()
) -> Plan:
    """Status and event when the API server refused a child: quoted, once; the next pass fails
    the job if the refusal is lasting. Nothing when status already says the same. children:
    those that exist (made before the refusal too): the phase is said again from them, as
    the pass before counted the workers it was about to make."""
    old = JobStatus.model_validate(body.get("status") or {})
    what = f"creating {refused.kind} {refused.name} was refused ({refused.reason}): "
    message = (what + refused.message)[:1024]
    current = old.refusal
    if current is not None and (current.message, current.lasting) == (message, refused.lasting):
        return Plan()
    refusal = CreationRefusal(
        reason=refused.reason,
        message=message,
        lasting=refused.lasting,
        since=truncate_to_second(now),
    )
    new = old.model_copy(update={"refusal": refusal})
    job = parse_job(body).model_copy(update={"status": new})  # it was parsed to be refused
    workers = [x for x in children if pods.is_worker(x)]
    new = status.compute_status(job, workers, now, attempt=old.restart_attempt or 0)
    patch = plan_status_patch(old, new)
    return Plan(status_patch=patch, events=[Event("Warning", c.REASON_CREATION_REFUSED, message)])


def replace_stragglers(
    job: DistributedTrainingJob, new: JobStatus, workers: Sequence[Obj]
) -> tuple[JobStatus, list[str], list[Event]]:
    """Under stragglerDetection action ReplacePod: the status with the named stragglers marked
    replaced and their nodes avoided, the pods to delete, and the events saying so."""
    replacing = stragglers.plan_replacements(stragglers.read_policy(job), new, workers)
    if replacing is None:
        return new, [], []
    update = {"stragglers": replacing.stragglers, "avoided_nodes": replacing.avoided_nodes}
    return new.model_copy(update=update), replacing.delete_pods, replacing.events


def plan_children(
    job: DistributedTrainingJob, attempt: int, phase: Phase | None, children: Sequence[Obj]
) -> tuple[list[Obj], list[str]]:
    """Children to create and pods to delete for the decided attempt and phase: the Services,
    the rendezvous pod and the claim by name, the workers by slot (slots.py)."""
    pod_children = [x for x in children if x.get("kind") == "Pod"]
    if phase in c.TERMINAL_PHASES or phase in (Phase.SUSPENDED, Phase.QUEUED):
        # Finished pods stay for their logs; whatever still runs goes. A worker whose
        # containers all exited 0 has finished though its phase may not say so yet (the job
        # just Succeeded on it): it stays too. Services and the checkpoint volume stay until
        # the job is deleted.
        return [], sorted(
            pods.name_of(p)
            for p in pod_children
            if pods.is_active(p) and not pods.exited_cleanly(p)
        )
    existing = {(x.get("kind"), pods.name_of(x)) for x in children}
    create = [x for x in fixed_children(job) if (x["kind"], x["metadata"]["name"]) not in existing]
    workers = [x for x in pod_children if pods.is_worker(x)]
    for index in slots.empty_indexes(workers, attempt, job.spec.replicas):
        create.append(builders.build_worker_pod(job, index, attempt, naming.new_token()))
    unwanted = [
        pods.name_of(p)
        for p in workers
        if not pods.is_leaving(p) and _unwanted(p, attempt, job.spec.replicas)
    ]
    return create, sorted({*unwanted, *slots.surplus_pods(workers, attempt)})


def fixed_children(job: DistributedTrainingJob) -> list[Obj]:
    """What the job owns under names of its own, whatever the attempt: the Services, the
    rendezvous pod (torchrun's; TensorFlow has none) and, when the job asks for one to be made,
    the checkpoint claim."""
    children = [builders.build_workers_service(job)]
    if job.spec.framework == Framework.PYTORCH:
        children.append(builders.build_rendezvous_pod(job))
        if rendezvous.has_own_service(job):
            children.append(builders.build_rendezvous_service(job))
    claim = builders.build_checkpoint_claim(job)
    return [claim, *children] if claim else children


def _unwanted(pod: Obj, attempt: int, replicas: int) -> bool:
    return pods.attempt_of(pod) != attempt or not 0 <= pods.index_of(pod) < replicas


def phase_event(old_phase: Phase | None, new: JobStatus) -> Event | None:
    """The event of a phase change, with the reason and message of the decision behind it."""
    if new.phase == old_phase or new.phase is None or not new.conditions:
        return None
    own = new.conditions[0]  # every condition carries the decision's reason and message
    warning = new.phase in (Phase.FAILED, Phase.RESTARTING)
    message = f"{new.phase}: {own.message}"
    return Event("Warning" if warning else "Normal", str(own.reason), message)


def plan_unparsable_job(body: Obj, invalid: InvalidJob, now: datetime) -> Plan:
    """A job the models refuse (a CRD from an older version, an API server without the CEL
    rules): Failed with the field named, once; its children, if any, are left alone."""
    old = body.get("status") or {}
    if old.get("phase") in c.TERMINAL_PHASES:
        return Plan()
    failure = JobFailure(c.REASON_INVALID_JOB, f"the operator cannot read this job: {invalid}")
    decision = status.Decision(Phase.FAILED, failure.reason, failure.message)
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    conditions = status.build_conditions(decision, [], generation, now)
    new = JobStatus(
        phase=Phase.FAILED,
        conditions=conditions,
        completion_time=conditions[0].last_transition_time,
    )
    patch = plan_status_patch(JobStatus(), new)
    event = Event("Warning", failure.reason, f"{Phase.FAILED}: {failure.message}")
    return Plan(status_patch=patch, events=[event])


def with_force_deletions(
    plan: Plan,
    children: Sequence[Obj],
    lost_nodes: Collection[str],
    on_deleted: Mapping[str, str],
    now: datetime,
) -> Plan:
    """Add the pods stuck terminating on a lost node and those on a deleted node (instead of a
    graceful deletion: no kubelet would carry it out), and when to look at deleting pods again."""
    pod_children = [x for x in children if x.get("kind") == "Pod"]
    doomed = dict(lostnodes.force_deletions(pod_children, lost_nodes, now))
    for pod, node in on_deleted.items():
        doomed.setdefault(pod, f"pod {pod} was on node {node}, which was deleted: force-deleted")
    for pod, why in sorted(doomed.items()):
        plan.force_delete_pods.append(pod)
        plan.events.append(Event("Warning", c.REASON_POD_FORCE_DELETED, why))
    plan.delete_pods = [p for p in plan.delete_pods if p not in doomed]
    next_check = lostnodes.seconds_until_next_check(pod_children, now)
    plan.requeue_after = sooner(plan.requeue_after, next_check)
    return plan


@dataclass
class Carried:
    """What carrying out a plan wrote: the job as its status patch left it (None: no patch, or
    the job is gone) and the children it created."""

    job: Obj | None = None
    created: list[Obj] = field(default_factory=list)


def _carry_scheduling(
    api: KubeApi, plan: Plan, carried: Carried, namespace: str, name: str
) -> None:
    """What the schedulers read, before any worker is made: the gang's PodGroup, the Workload."""
    if plan.pod_group:
        api.apply_pod_group(plan.pod_group)
    if plan.workload and (made := api.create_workload(plan.workload)) is not None:
        carried.created.append(made)
    if plan.workload_status_patch:
        api.patch_workload_status(namespace, kw.workload_name(name), plan.workload_status_patch)


def execute_plan(api: KubeApi, body: Obj, plan: Plan) -> Carried:
    """Carry out a plan: status first, then events, deletions, creations.

    The status patch names the resourceVersion of the body the plan was made from: should the
    job have changed since, nothing of the plan is carried out (409, and the next pass decides
    again from the newer body).

    Events follow the status at once: the status is the durable record of a decision, and the
    next pass does not decide (or announce) it again, so an event is lost only when the
    operator dies between these two writes (or, in the operator, before its event sender wrote
    what was posted: eventsender.py).

    A call that fails (CreationRefused, RetryableError) carries what was written before it.
    """
    carried = Carried()
    try:
        _carry_out(api, body, plan, carried)
    except (CreationRefused, RetryableError) as stopped:
        stopped.created, stopped.written_job = carried.created, carried.job
        raise
    return carried


def _carry_out(api: KubeApi, body: Obj, plan: Plan, carried: Carried) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if plan.status_patch:
        version = meta.get("resourceVersion")
        carried.job = api.patch_job_status(namespace, name, plan.status_patch, version)
    for event_type, reason, message in plan.events:
        api.post_event(body, event_type, reason, message)
    for pod in plan.delete_pods:
        api.delete_pod(namespace, pod)
    for pod in plan.force_delete_pods:
        api.delete_pod(namespace, pod, grace_period_seconds=0)
    _carry_scheduling(api, plan, carried, namespace, name)
    for obj in plan.create:
        if (made := api.create(obj)) is not None:
            carried.created.append(made)
    if plan.delete_job:
        api.delete_job(namespace, name)
