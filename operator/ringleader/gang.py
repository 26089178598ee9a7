"""spec.scheduling.gang: which PodGroup API the workers' scheduler reads, and how pods join it.

A gang scheduler binds all of a group's pods or none, so a job never holds some GPUs while it
waits for the rest. Kubernetes' own scheduler has no such thing (its Workload API is alpha and
changes each release); the two gang schedulers in use read a PodGroup of their own:

- Volcano (`schedulerName: volcano`): scheduling.volcano.sh/v1beta1 PodGroup, with the queue of
  spec.scheduling.queueName; a pod joins with the annotation scheduling.k8s.io/group-name.
- scheduler-plugins' coscheduling (any other scheduler name): scheduling.x-k8s.io/v1alpha1
  PodGroup; a pod joins with the label scheduling.x-k8s.io/pod-group.

One PodGroup per job, named after it; its minMember is the workers the job needs to train (all,
or an elastic job's minReplicas), so an elastic job grows past it one pod at a time, and its
minResources what those workers request together (podresources.py). While the gang waits, what
its scheduler wrote in the PodGroup's status says why (explain_unplaced). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ringleader import constants as c
from ringleader import podresources
from ringleader.models import DistributedTrainingJob


@dataclass(frozen=True)
class PodGroupApi:
    """Where a scheduler's PodGroups live, and what it is called in messages."""

    group: str
    version: str
    scheduler: str
    plural: str = "podgroups"
    kind: str = "PodGroup"

    @property
    def api_version(self) -> str:
        """The apiVersion of its objects."""
        return f"{self.group}/{self.version}"


VOLCANO = PodGroupApi("scheduling.volcano.sh", "v1beta1", "Volcano")
COSCHEDULING = PodGroupApi("scheduling.x-k8s.io", "v1alpha1", "the coscheduling plugin")


def pod_group_api(gang: bool, scheduler_name: str | None) -> PodGroupApi | None:
    """The PodGroup API of the workers' scheduler; None when the job asks for no gang."""
    if not gang:
        return None
    return VOLCANO if scheduler_name == c.VOLCANO_SCHEDULER else COSCHEDULING


def api_of(job: DistributedTrainingJob) -> PodGroupApi | None:
    """pod_group_api for a job."""
    scheduling = job.spec.scheduling
    if scheduling is None:
        return None
    return pod_group_api(scheduling.gang, scheduling.scheduler_name)


def build_pod_group_spec(job: DistributedTrainingJob, api: PodGroupApi) -> dict[str, object]:
    """The PodGroup's spec for this job and scheduler."""
    # The workers that must be placed together before any is bound, and what they ask for.
    members = job.spec.fewest_workers()
    spec: dict[str, object] = {"minMember": members}
    requests = podresources.gang_requests(job.spec.template.get("spec") or {}, members)
    if requests:
        spec["minResources"] = requests
    scheduling = job.spec.scheduling
    if api is VOLCANO and scheduling is not None and scheduling.queue_name:
        spec["queue"] = scheduling.queue_name
    if api is VOLCANO and scheduling is not None and scheduling.priority_class_name:
        spec["priorityClassName"] = scheduling.priority_class_name
    return spec


def join_marks(api: PodGroupApi, group_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) that put a worker pod in the group."""
    if api is VOLCANO:
        return {}, {c.VOLCANO_GROUP_ANNOTATION: group_name}
    return {c.COSCHEDULING_GROUP_LABEL: group_name}, {}


def describe_missing(api: PodGroupApi) -> str:
    """Why a gang job fails (GangSchedulingUnavailable) where the API is not served."""
    return (
        f"spec.scheduling.gang needs {api.plural}.{api.api_version}, the PodGroup API of "
        f"{api.scheduler}, and this cluster does not serve it: install {api.scheduler}, or "
        "remove spec.scheduling.gang"
    )


# Volcano's PodGroup phases before its gang is bound: not yet let into its queue, or let in and
# waiting for room on the nodes. Its Unschedulable condition stays True after the gang runs; the
# phase tells whether it still waits.
VOLCANO_WAITING_PHASES = {
    "Pending": "the gang is not yet admitted to Volcano queue {queue}",
    "Inqueue": "the gang is in Volcano queue {queue} but not placed",
}


def find_pod_group(children: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The job's PodGroup among its children, if the watch has seen one."""
    return next((x for x in children if x.get("kind") == "PodGroup"), None)


def explain_unplaced(group: Mapping[str, Any] | None) -> str:
    """Why the gang scheduler has not placed the gang, from its PodGroup's status; "" when it
    does not say (coscheduling's PodGroups carry no reason: the pods' conditions do)."""
    if group is None or group.get("apiVersion") != VOLCANO.api_version:
        return ""
    status = group.get("status") or {}
    where = VOLCANO_WAITING_PHASES.get(status.get("phase") or "")
    reasons = [
        condition.get("message") or condition.get("reason") or ""
        for condition in status.get("conditions") or []
        if condition.get("type") == "Unschedulable" and condition.get("status") == "True"
    ]
    if where is None or not any(reasons):
        return ""
    queue = (group.get("spec") or {}).get("queue") or "default"
    return f"{where.format(queue=queue)}: {reasons[0]}"
