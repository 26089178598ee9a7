"""Kueue's Workload protocol for a queued job: the Workload the operator would create, what its
status says, and the status writes Kueue expects from a job's controller. Pure.

The README's Scheduling section ("DistributedTrainingJob under Kueue") says why this protocol;
queueing.py applies it in each reconcile. The steps follow what
Kueue's Go jobframework does for its own integrations (ReconcileGenericJob in
sigs.k8s.io/kueue/pkg/controller/jobframework/reconciler.go): one Workload per job, owned by it;
run only once it is Admitted, with the admitted count and the flavors' node labels and
tolerations; when Evicted, stop, then clear the admission so that Kueue queues it again; mark it
Finished when the job ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ringleader import builders, naming
from ringleader import constants as c
from ringleader.apitime import format_time
from ringleader.models import DistributedTrainingJob

Obj = dict[str, Any]
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
API_VERSION = c.KUEUE_API_VERSION
WORKERS = "workers"  # the one pod set: the worker pods
# The parts of a worker's pod spec that decide where it fits and what it uses: what Kueue
# counts against quota and checks against flavors. Per-pod details (env, volumes) stay out.
SCHEDULING_FIELDS = (
    "containers", "initContainers", "overhead", "resources", "nodeSelector", "affinity",
    "tolerations", "topologySpreadConstraints", "priorityClassName", "schedulerName",
    "runtimeClassName",
)  # fmt: skip
CONTAINER_FIELDS = ("name", "image", "resources", "restartPolicy")

State = Literal["Queued", "Admitted", "Evicted", "Finished"]


def workload_name(job_name: str) -> str:
    """The job's Workload: one per job."""
    return f"dtj-{job_name}"


def _pod_set_template(job: DistributedTrainingJob) -> Obj:
    spec = builders.build_worker_pod(job, 0, 0)["spec"]
    kept = {key: spec[key] for key in SCHEDULING_FIELDS if key in spec}
    for key in ("containers", "initContainers"):
        if key in kept:
            kept[key] = [{k: c[k] for k in CONTAINER_FIELDS if k in c} for c in kept[key]]
    return {"spec": kept}


def build_workload(job: DistributedTrainingJob, queue: str, priority: int | None) -> Obj:
    """The job's Workload for LocalQueue `queue`; priority: the value of the job's
    PriorityClass (Kueue wants both the reference and the value)."""
    pod_set: Obj = {"name": WORKERS, "count": job.spec.replicas}
    if job.spec.fewest_workers() < job.spec.replicas:
        # Partial admission: Kueue may admit any count from the elastic minimum up.
        pod_set["minCount"] = job.spec.fewest_workers()
    pod_set["template"] = _pod_set_template(job)
    spec: Obj = {"queueName": queue, "podSets": [pod_set]}
    scheduling = job.spec.scheduling
    if scheduling is not None and scheduling.priority_class_name and priority is not None:
        spec["priorityClassRef"] = {
            "group": "scheduling.k8s.io",
            "kind": "PriorityClass",
            "name": scheduling.priority_class_name,
        }
        spec["priority"] = priority
    metadata = {
        "name": workload_name(job.metadata.name),
        "namespace": job.metadata.namespace or "default",
        # The job's children's labels: the operator's watch finds it, the cache keys it to the
        # job. And the job's uid, as Kueue's own integrations label it (its preemption messages
        # name the preempting job by it).
        "labels": {
            **naming.job_labels(job.metadata.name, c.ROLE_QUEUE),
            JOB_UID_LABEL: job.metadata.uid or "",
        },
        "ownerReferences": [builders.build_owner_reference(job)],
    }
    return {"apiVersion": API_VERSION, "kind": "Workload", "metadata": metadata, "spec": spec}


@dataclass(frozen=True)
class Admission:
    """What the Workload's status means for the job."""

    state: State
    message: str
    count: int | None = None  # workers admitted
    flavors: tuple[str, ...] = ()  # ResourceFlavors assigned to the workers
    cluster_queue: str = ""


def _conditions(workload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (workload.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in found}


def _true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> bool:
    return (conditions.get(kind) or {}).get("status") == "True"


def read_admission(workload: Mapping[str, Any]) -> Admission:
    """Queued, Admitted, Evicted or Finished, with Kueue's own words and the assignment."""
    conditions = _conditions(workload)
    status = workload.get("status") or {}
    if _true(conditions, "Finished"):
        return Admission("Finished", conditions["Finished"].get("message", ""))
    admission = status.get("admission") or {}
    # Evicted stays True after the quota is given back, until the next admission: only while
    # quota is still reserved is there something to stop and give back.
    if _true(conditions, "Evicted") and (admission or _true(conditions, "QuotaReserved")):
        return Admission("Evicted", conditions["Evicted"].get("message", ""))
    if _true(conditions, "Admitted") and admission:
        assignments = admission.get("podSetAssignments") or []
        assignment: Mapping[str, Any] = next(
            (a for a in assignments if a.get("name") == WORKERS), {}
        )
        return Admission(
            "Admitted",
            conditions["Admitted"].get("message", ""),
            count=assignment.get("count"),
            flavors=tuple(sorted(set((assignment.get("flavors") or {}).values()))),
            cluster_queue=admission.get("clusterQueue", ""),
        )
    waiting = conditions.get("QuotaReserved") or {}
    return Admission("Queued", waiting.get("message") or "waiting for Kueue to reserve quota")


@dataclass(frozen=True)
class Placement:
    """What the admitted flavors add to the workers: node labels to select, taints to bear."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Obj] = field(default_factory=list)


def build_placement(flavors: Sequence[Mapping[str, Any]]) -> Placement:
    """Merge the ResourceFlavors' nodeLabels and append their tolerations, as Kueue does for
    its own integrations (podset.FromAssignment)."""
    placement = Placement()
    for flavor in flavors:
        spec = flavor.get("spec") or {}
        placement.node_selector.update(spec.get("nodeLabels") or {})
        placement.tolerations.extend(spec.get("tolerations") or [])
    return placement


def _condition(kind: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    }


def _replacing(workload: Mapping[str, Any], new: Sequence[Obj]) -> list[Obj]:
    kinds = {c["type"] for c in new}
    kept = [dict(c) for c in _conditions(workload).values() if c["type"] not in kinds]
    return [*kept, *new]


def build_requeue_patch(workload: Mapping[str, Any], now: datetime) -> Obj:
    """The status merge patch that gives an evicted Workload's quota back once its pods are
    gone, so Kueue queues it again (Requeued=True: it was preempted, not deactivated)."""
    evicted = _conditions(workload).get("Evicted") or {}
    reason, message = evicted.get("reason", "Evicted"), evicted.get("message", "")
    conditions = _replacing(
        workload,
        [
            _condition("QuotaReserved", "False", "Pending", message, now),
            _condition("Admitted", "False", "NoReservation", "the quota was given back", now),
            _condition("Requeued", "True", reason, message, now),
        ],
    )
    return {"status": {"admission": None, "conditions": conditions}}


def build_finished_patch(
    workload: Mapping[str, Any], succeeded: bool, message: str, now: datetime
) -> Obj:
    """The status merge patch that marks the Workload Finished: its quota is released at once."""
    reason = "Succeeded" if succeeded else "Failed"
    finished = _condition("Finished", "True", reason, message, now)
    return {"status": {"conditions": _replacing(workload, [finished])}}
