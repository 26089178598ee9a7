"""Node loss: short node-loss tolerations on every pod, and pods stuck terminating on a lost node
force-deleted once their grace period and a margin are over."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any, cast

import pytest

from ringleader import builders, lostnodes
from ringleader import constants as c
from ringleader.apiclient import ApiError
from ringleader.apitime import format_time
from ringleader.controller import Controller
from ringleader.kube import KubeApi
from ringleader.nodecache import LostNodes
from ringleader.reconcile import plan_reconcile
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.statusstore import StatusStore
from tests.unit.operator.test_reconcile_plan import NOW, names, settle
from tests.unit.operator.workers import is_called, known_as, known_names, name_in

Obj = dict[str, Any]
NOT_READY, UNREACHABLE = c.NODE_LOSS_TAINTS
MARGIN = c.FORCE_DELETE_MARGIN_SECONDS


def short(key: str) -> Obj:
    return {
        "key": key,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": c.NODE_LOSS_TOLERATION_SECONDS,
    }


def with_tolerations(tolerations: list[Obj]) -> Obj:
    job = make_job()
    job["spec"]["template"]["spec"]["tolerations"] = tolerations
    return job


def test_workers_and_the_store_tolerate_a_lost_node_briefly_not_for_five_minutes() -> None:
    job = make_job()
    worker = builders.build_worker_pod(parse(job), 0, 0)["spec"]
    store = builders.build_rendezvous_pod(parse(job))["spec"]
    assert worker["tolerations"] == store["tolerations"] == [short(NOT_READY), short(UNREACHABLE)]
    assert c.NODE_LOSS_TOLERATION_SECONDS < 300  # the API server's default


def test_a_users_own_node_loss_toleration_wins_and_is_not_doubled() -> None:
    own = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
    spec = builders.build_worker_pod(parse(with_tolerations([own])), 0, 0)["spec"]
    assert spec["tolerations"] == [own, short(NOT_READY)]


def test_a_no_schedule_toleration_of_the_key_does_not_cover_the_eviction() -> None:
    own = {"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}
    spec = builders.build_worker_pod(parse(with_tolerations([own])), 0, 0)["spec"]
    assert spec["tolerations"] == [own, short(NOT_READY), short(UNREACHABLE)]


def test_a_toleration_of_every_taint_needs_nothing_added() -> None:
    everything = {"operator": "Exists"}
    assert builders.build_rendezvous_pod(parse(with_tolerations([everything])))["spec"][
        "tolerations"
    ] == [everything]


def test_the_template_is_not_changed_by_building_pods() -> None:
    job = with_tolerations([{"key": "gpu", "operator": "Exists"}])
    before = copy.deepcopy(job)
    builders.build_worker_pod(parse(job), 0, 0)
    builders.build_rendezvous_pod(parse(job))
    assert job == before


@pytest.mark.parametrize(
    ("node", "lost"),
    [
        (None, True),  # gone
        ({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}, True),
        ({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, True),
        ({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, False),
        ({"status": {}}, False),  # never reported: not known to be lost
    ],
)
def test_a_node_is_lost_when_gone_or_not_ready(node: Obj | None, lost: bool) -> None:
    assert lostnodes.node_is_lost(node) is lost


def settled_on_nodes() -> tuple[Obj, list[Obj]]:
    """A running job of two workers, every pod bound to node-<its name> (a worker's: its slot)."""
    job, children = settle(make_job(), [])
    for child in children:
        if child["kind"] == "Pod":
            child["spec"]["nodeName"] = f"node-{known_as(child)}"
            child["metadata"]["uid"] = f"uid-{child['metadata']['name']}"
    return job, children


def deleting(children: list[Obj], name: str, grace_ends_in: float, evicted: bool = False) -> None:
    """Mark a pod as being deleted; its grace period ends `grace_ends_in` seconds after NOW."""
    pod = next(x for x in children if x["kind"] == "Pod" and is_called(x, name))
    pod["metadata"]["deletionTimestamp"] = format_time(NOW + timedelta(seconds=grace_ends_in))
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    if evicted:
        reason = "DeletionByTaintManager"
        cond = {"type": "DisruptionTarget", "status": "True", "reason": reason}
        pod["status"]["conditions"].append(cond)


def test_a_settled_job_with_no_pod_being_deleted_asks_for_no_node_and_no_requeue() -> None:
    job, children = settled_on_nodes()
    plan = plan_reconcile(job, children, NOW)
    assert lostnodes.nodes_to_check(children, NOW) == set()
    assert (plan.force_delete_pods, plan.requeue_after) == ([], None)


def test_a_pod_in_its_grace_period_is_left_alone_and_looked_at_again_when_it_ends() -> None:
    job, children = settled_on_nodes()
    deleting(children, "digits-rdzv", grace_ends_in=20)
    lost = {"node-digits-rdzv"}
    assert lostnodes.nodes_to_check(children, NOW) == set()
    plan = plan_reconcile(job, children, NOW, lost)
    assert plan.force_delete_pods == []
    assert plan.requeue_after == pytest.approx(20 + MARGIN)


def test_a_pod_just_past_its_grace_period_gets_the_margin_too() -> None:
    job, children = settled_on_nodes()
    deleting(children, "digits-rdzv", grace_ends_in=-(MARGIN - 1))
    plan = plan_reconcile(job, children, NOW, {"node-digits-rdzv"})
    assert plan.force_delete_pods == []
    assert plan.requeue_after == pytest.approx(1)


def test_a_stuck_pod_on_a_lost_node_is_force_deleted_with_a_warning() -> None:
    job, children = settled_on_nodes()
    deleting(children, "digits-rdzv", grace_ends_in=-(MARGIN + 5))
    assert lostnodes.nodes_to_check(children, NOW) == {"node-digits-rdzv"}
    plan = plan_reconcile(job, children, NOW, {"node-digits-rdzv"})
    assert plan.force_delete_pods == ["digits-rdzv"]
    assert plan.delete_pods == [] and plan.create == []  # the store comes back once it is gone
    assert ("Warning", "PodForceDeleted") in [(t, r) for t, r, _ in plan.events]
    (why,) = [m for _, r, m in plan.events if r == "PodForceDeleted"]
    assert why == (
        f"pod digits-rdzv was still terminating {MARGIN + 5}s after its grace period, "
        "on lost node node-digits-rdzv: force-deleted"
    )


def test_a_stuck_pod_on_a_ready_node_is_left_to_its_kubelet_and_looked_at_again() -> None:
    job, children = settled_on_nodes()
    deleting(children, "digits-rdzv", grace_ends_in=-(MARGIN + 5))
    plan = plan_reconcile(job, children, NOW, lost_nodes=set())
    assert plan.force_delete_pods == []
    assert plan.requeue_after == c.STUCK_POD_RECHECK_SECONDS


def test_a_worker_evicted_from_a_lost_node_is_replaced_once_force_deleted() -> None:
    policy = {"rules": [{"classes": ["NodeLost"], "action": "RestartWorker"}]}
    job, children = settle(make_job({"failurePolicy": policy}), [])
    for child in children:
        if child["kind"] == "Pod":
            child["spec"]["nodeName"] = "gpu-1"
            child["metadata"]["uid"] = f"uid-{child['metadata']['name']}"
    deleting(children, "digits-worker-1-a0", grace_ends_in=-(MARGIN + 1), evicted=True)
    plan = plan_reconcile(job, children, NOW, {"gpu-1"})
    assert plan.status_patch is not None
    assert plan.status_patch["lastFailure"]["class"] == "NodeLost"
    assert known_names(plan.force_delete_pods, children) == ["digits-worker-1-a0"]
    # Its slot held: the replacement is created by the reconcile that sees the old one gone.
    assert plan.create == []
    job = {**job, "status": {**job["status"], **plan.status_patch}}
    gone = [x for x in children if not is_called(x, "digits-worker-1-a0")]
    after = plan_reconcile(job, gone, NOW)
    assert names(after.create) == ["Pod/digits-worker-1-a0"]
    assert after.create[0]["metadata"]["name"] != plan.force_delete_pods[0]
    assert after.force_delete_pods == []


class FakeApi:
    """get_node answers from a dict, counting the calls; a name in `errors` fails."""

    def __init__(self, nodes: dict[str, Obj | None], errors: set[str] | None = None) -> None:
        self.nodes, self.errors, self.calls = nodes, errors or set(), 0

    def get_node(self, name: str) -> Obj | None:
        self.calls += 1
        if name in self.errors:
            raise ApiError(status=403, reason="Forbidden")
        return self.nodes.get(name)


def ready(status: str) -> Obj:
    return {"status": {"conditions": [{"type": "Ready", "status": status}]}}


def test_lost_nodes_reads_each_node_once_within_its_ttl() -> None:
    api = FakeApi({"a": ready("True"), "b": ready("Unknown")})
    clock = [100.0]
    cache = LostNodes(cast(KubeApi, api), ttl=5, clock=lambda: clock[0])
    assert cache.among(["a", "b", "gone"]) == {"b", "gone"}
    assert cache.among(["a", "b"]) == {"b"}
    assert api.calls == 3
    api.nodes["a"] = ready("False")
    clock[0] += 6
    assert cache.among(["a"]) == {"a"}
    assert api.calls == 4


def test_a_node_that_cannot_be_read_is_not_taken_for_lost() -> None:
    api = FakeApi({}, errors={"a"})
    assert LostNodes(cast(KubeApi, api)).among(["a"]) == frozenset()


def worker(children: list[Obj], name: str) -> Obj:
    return next(x for x in children if is_called(x, name))


def test_the_pods_of_a_deleted_node_are_found_by_name() -> None:
    _, children = settled_on_nodes()
    assert lostnodes.bound_nodes(children) == {
        "node-digits-rdzv",
        "node-digits-worker-0-a0",
        "node-digits-worker-1-a0",
    }
    found = lostnodes.on_deleted_nodes(children, {"node-digits-worker-1-a0", "elsewhere"})
    assert found == {name_in(children, "digits-worker-1-a0"): "node-digits-worker-1-a0"}


def test_a_worker_on_a_deleted_node_fails_as_node_lost_and_is_force_deleted_at_once() -> None:
    job, children = settled_on_nodes()
    assert worker(children, "digits-worker-1-a0")["status"]["phase"] == "Running"
    plan = plan_reconcile(job, children, NOW, deleted_nodes={"node-digits-worker-1-a0"})
    assert plan.status_patch is not None
    last = plan.status_patch["lastFailure"]
    assert (last["class"], last["pod"], last["reason"]) == (
        "NodeLost",
        name_in(children, "digits-worker-1-a0"),
        "NodeDeleted",
    )
    assert last["message"] == "its node node-digits-worker-1-a0 was deleted"
    assert last["action"] == "RestartWorker"
    assert plan.status_patch["restartsByClass"] == {"NodeLost": 1}
    assert plan.status_patch.get("restarts", 0) == 0  # the cluster's doing: not counted
    # Forced, not graceful: no kubelet is left to finish a graceful deletion.
    assert known_names(plan.force_delete_pods, children) == ["digits-worker-1-a0"]
    assert plan.delete_pods == []
    reasons = [r for _, r, _ in plan.events]
    assert reasons == ["WorkerFailed", "PodForceDeleted"]


def test_the_store_on_a_deleted_node_is_force_deleted_and_no_worker_fails() -> None:
    job, children = settled_on_nodes()
    plan = plan_reconcile(job, children, NOW, deleted_nodes={"node-digits-rdzv"})
    assert plan.force_delete_pods == ["digits-rdzv"]
    assert plan.status_patch is None or "lastFailure" not in plan.status_patch
    (why,) = [m for _, r, m in plan.events if r == "PodForceDeleted"]
    assert why == "pod digits-rdzv was on node node-digits-rdzv, which was deleted: force-deleted"


def test_a_worker_already_replaced_for_its_deleted_node_is_not_failed_again() -> None:
    job, children = settled_on_nodes()
    deleted = {"node-digits-worker-1-a0"}
    first = plan_reconcile(job, children, NOW, deleted_nodes=deleted)
    assert first.status_patch is not None
    job = {**job, "status": {**job["status"], **first.status_patch}}
    again = plan_reconcile(job, children, NOW, deleted_nodes=deleted)  # the force-delete failed
    assert again.status_patch is None or "lastFailure" not in again.status_patch
    assert known_names(again.force_delete_pods, children) == ["digits-worker-1-a0"]


def test_deleted_nodes_are_those_seen_deleted_lately_and_still_missing() -> None:
    api = FakeApi({"back": ready("True")}, errors={"unreadable"})
    clock = [100.0]
    cache = LostNodes(cast(KubeApi, api), clock=lambda: clock[0])
    cache.among(["gone"])  # cached as lost before the deletion: the deletion replaces that
    for name in ("gone", "back", "unreadable"):
        cache.note_deleted(name)
    # "back" registered again under the same name; "unreadable" is not known to be gone.
    assert cache.deleted_among(["gone", "back", "unreadable", "never-deleted"]) == {"gone"}
    clock[0] += c.DELETED_NODE_MEMORY_SECONDS
    assert cache.deleted_among(["gone"]) == frozenset()
    calls = api.calls
    cache.note_deleted("other")  # the expired deletion is forgotten
    assert set(cache.deleted) == {"other"} and api.calls == calls


def test_a_deleted_node_wakes_every_job_with_a_pod_on_it() -> None:
    controller = Controller(cast(KubeApi, FakeApi({})))
    for job_name, node in (("a", "n1"), ("b", "n2"), ("c", "n1")):
        labels = {"ringleader.dev/job-name": job_name}
        meta = {"name": f"{job_name}-worker-0-a0", "namespace": "team-a", "labels": labels}
        controller.cache.put_child({"kind": "Pod", "metadata": meta, "spec": {"nodeName": node}})
    controller.node_deleted("n1")
    assert set(controller.queue.queued) == {("team-a", "a"), ("team-a", "c")}
    assert "n1" in controller.lost_nodes.deleted


@pytest.mark.parametrize(
    "change",
    [
        {"status": {"phase": "Succeeded"}},  # finished: nothing to replace
        {"metadata": {"deletionTimestamp": format_time(NOW)}},  # on its way out already
    ],
)
def test_a_worker_done_or_leaving_on_a_deleted_node_is_only_force_deleted(change: Obj) -> None:
    job, children = settled_on_nodes()
    pod = worker(children, "digits-worker-1-a0")
    for key, value in change.items():
        pod[key] = {**pod[key], **value}
    plan = plan_reconcile(job, children, NOW, deleted_nodes={"node-digits-worker-1-a0"})
    assert plan.status_patch is None or "lastFailure" not in plan.status_patch
    assert known_names(plan.force_delete_pods, children) == ["digits-worker-1-a0"]


def test_a_failed_worker_on_a_deleted_node_keeps_the_class_of_its_own_failure() -> None:
    job, children = settled_on_nodes()
    pod = worker(children, "digits-worker-1-a0")
    pod["status"]["phase"] = "Failed"
    pod["status"]["containerStatuses"] = [
        {"name": "trainer", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    ]
    plan = plan_reconcile(job, children, NOW, deleted_nodes={"node-digits-worker-1-a0"})
    assert plan.status_patch is not None
    assert plan.status_patch["lastFailure"]["class"] == "OutOfMemory"
    assert known_names(plan.force_delete_pods, children) == ["digits-worker-1-a0"]


class NodeGoneApi(FakeApi, StatusStore):
    """The deleted node stays gone; every write is accepted, events and deletions kept."""

    def __init__(self) -> None:
        FakeApi.__init__(self, {})
        StatusStore.__init__(self)
        self.events: list[str] = []
        self.forced: list[str] = []

    def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> None:
        if grace_period_seconds == 0:
            self.forced.append(name)

    def create(self, obj: Obj) -> Obj | None:
        return obj

    def post_event(self, body: Obj, event_type: str, reason: str, message: str) -> None:
        self.events.append(reason)


def test_a_pod_force_deleted_with_its_node_is_announced_once_before_the_watch_catches_up() -> None:
    job, children = settled_on_nodes()
    api = NodeGoneApi()
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()  # where a requeue timer would go; never run
    key = controller.cache.put_job(api.hold(job))
    for child in children:
        controller.cache.put_child(child)
    controller.lost_nodes.note_deleted("node-digits-worker-1-a0")
    try:
        for _ in range(3):  # e.g. woken by its own status write before the pod's DELETED event
            controller._reconcile(key)
    finally:
        controller.loop.close()
    assert known_names(api.forced, children) == ["digits-worker-1-a0"]
    assert api.events.count("PodForceDeleted") == 1
