"""A job labelled kueue.x-k8s.io/queue-name waits for Kueue: what its Workload allows this pass.

The job gets one Workload (kueueworkload.build_workload) and nothing else until Kueue admits it:
phase Queued, no pod. Admitted, it runs with the count Kueue admitted (an elastic job: anywhere
between its bounds) and the admitted flavors' node labels and tolerations on its pods. Evicted
(preempted, its queue stopped), it stops as a suspended job does — the workers checkpoint on
SIGTERM and leave — and once none is left the operator gives the quota back (Requeued) and the
job is Queued again, neither failed nor a counted restart; admitted again, its pods resume from
the newest checkpoint. When the job ends the Workload is marked Finished, releasing its quota.

While Kueue holds it the job is shown to the rest of the reconcile as suspended: no failure is
acted on, no startup timeout runs, running workers go and the checkpoint claim stays. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringleader import constants as c
from ringleader import kueueworkload as kw
from ringleader import pods
from ringleader.constants import Phase
from ringleader.models import DistributedTrainingJob, RunPolicy

Obj = dict[str, Any]


@dataclass(frozen=True)
class KueueFacts:
    """What the reconcile needs from outside the job's own objects: the value of its
    PriorityClass (None: none, or not found) and the admitted ResourceFlavors by name."""

    priority: int | None = None
    flavors: Mapping[str, Mapping[str, Any]] | None = None


NO_KUEUE_FACTS = KueueFacts()


@dataclass(frozen=True)
class Gate:
    """The job as Kueue lets it run this pass, and the Workload writes that go with it."""

    job: DistributedTrainingJob
    queued: tuple[str, str] | None = None  # (reason, message) while held: phase Queued
    create: Obj | None = None  # the Workload, when the job has none yet
    status_patch: Obj | None = None  # for the Workload's status (quota given back)


def queue_of(job: DistributedTrainingJob) -> str | None:
    """The LocalQueue the job is submitted to, if any."""
    return (job.metadata.labels or {}).get(kw.QUEUE_LABEL) or None


def find_workload(children: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The job's Workload among its children, once the watch (or the create) has it."""
    return next((x for x in children if x.get("kind") == "Workload"), None)


def gate(
    job: DistributedTrainingJob,
    children: Sequence[Obj],
    facts: KueueFacts,
    now: datetime,
) -> Gate:
    """What Kueue allows the job this pass (a job with no queue label: everything)."""
    queue = queue_of(job)
    old_phase = (job.status.phase if job.status else None) or None
    if queue is None or old_phase in c.TERMINAL_PHASES:
        return Gate(job)
    workload = find_workload(children)
    if workload is None:
        created = kw.build_workload(job, queue, facts.priority)
        why = f"in queue {queue}: its Workload is made, waiting for Kueue to admit it"
        return Gate(_held(job), (c.REASON_WAITING_FOR_ADMISSION, why), create=created)
    admission = kw.read_admission(workload)
    if admission.state == "Finished" or (_suspended(job) and admission.state != "Evicted"):
        # Finished: whatever the job does now is its own. Suspended by its user: phase
        # Suspended, whatever Kueue says.
        return Gate(job)
    if admission.state == "Admitted":
        return Gate(admitted(job, admission, facts.flavors or {}))
    if admission.state == "Evicted":
        return _evicted(job, workload, admission, children, now)
    why = f"in queue {queue}: {admission.message}"
    return Gate(_held(job), (c.REASON_WAITING_FOR_ADMISSION, why))


def _evicted(
    job: DistributedTrainingJob,
    workload: Mapping[str, Any],
    admission: kw.Admission,
    children: Sequence[Obj],
    now: datetime,
) -> Gate:
    stopping = [p for p in children if pods.is_worker(p) and pods.is_active(p)]
    why = f"evicted by Kueue ({admission.message}): stopping its workers, then queued again"
    # Kueue counts the quota as used until it is given back, which is only once nothing runs.
    patch = None if stopping else kw.build_requeue_patch(workload, now)
    return Gate(_held(job), (c.REASON_EVICTED, why), status_patch=patch)


def admitted(
    job: DistributedTrainingJob, admission: kw.Admission, flavors: Mapping[str, Mapping[str, Any]]
) -> DistributedTrainingJob:
    """The job as admitted: the count Kueue gave, the flavors' node labels and tolerations on
    the template (workers and the rendezvous pod take them from there)."""
    placement = kw.build_placement([flavors[name] for name in admission.flavors if name in flavors])
    template = dict(job.spec.template)
    pod_spec = dict(template.get("spec") or {})
    if placement.node_selector:
        pod_spec["nodeSelector"] = {
            **(pod_spec.get("nodeSelector") or {}),
            **placement.node_selector,
        }
    if placement.tolerations:
        pod_spec["tolerations"] = [*(pod_spec.get("tolerations") or []), *placement.tolerations]
    template["spec"] = pod_spec
    update: dict[str, Any] = {"template": template}
    if admission.count is not None and admission.count < job.spec.replicas:
        update["replicas"] = admission.count  # partial admission of an elastic job
    return job.model_copy(update={"spec": job.spec.model_copy(update=update)})


def _suspended(job: DistributedTrainingJob) -> bool:
    return bool(job.spec.run_policy and job.spec.run_policy.suspend)


def _held(job: DistributedTrainingJob) -> DistributedTrainingJob:
    policy = job.spec.run_policy or RunPolicy()
    held = policy.model_copy(update={"suspend": True})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"run_policy": held})})


def finished_patch(
    job: DistributedTrainingJob,
    children: Sequence[Obj],
    phase: Phase | None,
    message: str,
    now: datetime,
) -> Obj | None:
    """The Workload's Finished mark once the job has ended (None before, or once marked)."""
    workload = find_workload(children)
    if queue_of(job) is None or workload is None or phase not in c.TERMINAL_PHASES:
        return None
    if kw.read_admission(workload).state == "Finished":
        return None
    return kw.build_finished_patch(workload, phase == Phase.SUCCEEDED, message, now)
