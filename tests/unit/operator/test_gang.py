"""spec.scheduling.gang: the PodGroup each gang scheduler reads, and how workers join it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ringleader import builders, gang
from ringleader.discovery import ServedApis
from ringleader.reconcile import plan_reconcile
from tests.unit.operator.jobs import make_job, parse

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
VOLCANO = {"gang": True, "schedulerName": "volcano", "queueName": "research"}
ELASTIC = {"replicas": 3, "elastic": {"minReplicas": 2, "maxReplicas": 4}}


def gang_job(scheduling: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return make_job({"scheduling": scheduling or {"gang": True}, **spec})


def test_a_coscheduling_gang_is_a_pod_group_with_every_worker_and_a_label_on_each() -> None:
    job = gang_job()
    group = builders.build_pod_group(parse(job))
    assert group is not None
    assert (group["apiVersion"], group["kind"]) == ("scheduling.x-k8s.io/v1alpha1", "PodGroup")
    assert group["metadata"]["name"] == "digits"
    assert group["metadata"]["ownerReferences"][0]["kind"] == "DistributedTrainingJob"
    assert group["spec"] == {"minMember": 2}
    for pod in builders.build_worker_pods(parse(job), 0):
        assert pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == "digits"


def test_a_volcano_gang_carries_the_queue_and_its_workers_the_group_annotation() -> None:
    job = gang_job(VOLCANO, **ELASTIC)
    group = builders.build_pod_group(parse(job))
    assert group is not None
    assert group["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    # An elastic job trains from minReplicas on: the gang is its minimum, the rest join later.
    assert group["spec"] == {"minMember": 2, "queue": "research"}
    pod = builders.build_worker_pods(parse(job), 0)[0]
    assert pod["spec"]["schedulerName"] == "volcano"
    assert pod["metadata"]["annotations"] == {
        "scheduling.k8s.io/group-name": "digits",
        "scheduling.volcano.sh/queue-name": "research",
    }
    assert "scheduling.x-k8s.io/pod-group" not in pod["metadata"]["labels"]


def test_a_job_without_gang_has_no_pod_group_and_its_workers_no_marks() -> None:
    job = make_job({"scheduling": {"schedulerName": "volcano", "queueName": "research"}})
    assert builders.build_pod_group(parse(job)) is None
    annotations = builders.build_worker_pods(parse(job), 0)[0]["metadata"]["annotations"]
    assert annotations == {"scheduling.volcano.sh/queue-name": "research"}  # Volcano's own group


def test_a_queue_without_volcano_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"spec\.scheduling\.queueName is a Volcano queue"):
        parse(gang_job({"gang": True, "queueName": "research"}))


def test_the_pod_group_is_brought_up_to_date_whenever_workers_are_created() -> None:
    plan = plan_reconcile(gang_job(), [], NOW)
    assert plan.pod_group is not None and plan.pod_group["spec"] == {"minMember": 2}
    workers = builders.build_worker_pods(parse(gang_job()), 0)
    assert plan_reconcile(gang_job(), workers, NOW).pod_group is None  # nothing to create
    assert plan_reconcile(make_job(), [], NOW).pod_group is None  # no gang


def test_a_gang_whose_pod_group_api_is_not_served_fails_before_creating_workers() -> None:
    plan = plan_reconcile(gang_job(VOLCANO), [], NOW, pod_groups_served=False)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Failed"
    failed = plan.status_patch["conditions"][0]
    assert failed["reason"] == "GangSchedulingUnavailable"
    assert failed["message"] == (
        "spec.scheduling.gang needs podgroups.scheduling.volcano.sh/v1beta1, the PodGroup API of "
        "Volcano, and this cluster does not serve it: install Volcano, or remove "
        "spec.scheduling.gang"
    )
    assert not [x for x in plan.create if x["kind"] == "Pod"] and plan.pod_group is None


def test_running_gang_workers_are_left_alone_when_the_api_goes_away() -> None:
    job = gang_job()
    job["status"] = {"phase": "Running", "restartAttempt": 0}
    workers = builders.build_worker_pods(parse(job), 0)
    plan = plan_reconcile(job, workers, NOW, pod_groups_served=False)
    assert (plan.status_patch or {}).get("phase") != "Failed"


class Discovery:
    """Answers served_api_versions as ServedApis asks it; counts the questions."""

    def __init__(self, *served: str) -> None:
        self.served, self.asked = frozenset(served), 0

    def served_api_versions(self) -> frozenset[str]:
        self.asked += 1
        return self.served


def test_a_served_api_is_trusted_for_a_while_and_a_missing_one_asked_about_each_time() -> None:
    clock = [0.0]
    discovery = Discovery("scheduling.x-k8s.io/v1alpha1")
    served = ServedApis(discovery, ttl=30, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert served.serves("scheduling.x-k8s.io/v1alpha1")
    assert served.serves("scheduling.x-k8s.io/v1alpha1")
    assert discovery.asked == 1
    assert not served.serves("scheduling.volcano.sh/v1beta1")
    assert not served.serves("scheduling.volcano.sh/v1beta1")
    assert discovery.asked == 3
    clock[0] = 31.0
    assert served.serves("scheduling.x-k8s.io/v1alpha1") and discovery.asked == 4


# What Volcano v1.14 wrote on a PodGroup whose gang did not fit (seen in the local cluster).
VOLCANO_REASON = (
    "2/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable; "
    "Pending: 1 Schedulable, 2 Unschedulable. Origin reason is digits-worker-2-a0: 0/8 nodes "
    "are unavailable: 4 Insufficient nvidia.com/gpu."
)


def volcano_group(phase: str, unschedulable: bool = True) -> dict[str, Any]:
    """The job's Volcano PodGroup as the scheduler left it."""
    group = builders.build_pod_group(parse(gang_job(VOLCANO)))
    assert group is not None
    conditions = [{"type": "Scheduled", "status": "True", "reason": "tasks in gang are ready"}]
    if unschedulable:
        conditions.insert(
            0,
            {"type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
             "message": VOLCANO_REASON},
        )  # fmt: skip
    return {**group, "status": {"phase": phase, "conditions": conditions}}


def test_a_volcano_gang_that_is_not_placed_is_explained_by_its_pod_group_status() -> None:
    assert gang.explain_unplaced(volcano_group("Inqueue")) == (
        f"the gang is in Volcano queue research but not placed: {VOLCANO_REASON}"
    )
    assert gang.explain_unplaced(volcano_group("Pending")).startswith(
        "the gang is not yet admitted to Volcano queue research: 2/3 tasks in gang unschedulable"
    )
    # Volcano leaves the Unschedulable condition True once the gang runs: the phase decides.
    assert gang.explain_unplaced(volcano_group("Running")) == ""
    assert gang.explain_unplaced(volcano_group("Inqueue", unschedulable=False)) == ""


def test_coscheduling_pod_groups_and_missing_ones_explain_nothing() -> None:
    group = builders.build_pod_group(parse(gang_job()))
    assert group is not None
    assert gang.explain_unplaced({**group, "status": {"phase": "Pending"}}) == ""
    assert gang.explain_unplaced(None) == ""


def test_the_phase_message_of_a_waiting_gang_says_what_its_pod_group_says() -> None:
    job = gang_job(VOLCANO)
    job["status"] = {"phase": "Starting", "restartAttempt": 0}
    workers = builders.build_worker_pods(parse(job), 0)
    for pod in workers:  # created, Pending, and blamed by the scheduler in its own words
        pod["metadata"]["creationTimestamp"] = "2026-05-06T07:08:00Z"
        pod["status"] = {"phase": "Pending"}
    plan = plan_reconcile(job, [*workers, volcano_group("Inqueue")], NOW)
    assert plan.status_patch is not None
    message = plan.status_patch["conditions"][0]["message"]
    assert message.startswith("0/2 ready; the gang is in Volcano queue research but not placed: ")
    assert "Origin reason is digits-worker-2-a0" in message
    # Once it runs, the PodGroup's stale condition says nothing more.
    for pod in workers:
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    plan = plan_reconcile(job, [*workers, volcano_group("Running")], NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["conditions"][0]["message"] == "2/2 ready"
