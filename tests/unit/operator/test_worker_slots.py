"""Worker pods have a name per incarnation; the operator creates and deduplicates them by slot
(restart attempt and replica index), never by name."""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import timedelta
from typing import cast

import pytest

from ringleader import builders, naming, pods
from ringleader.apitime import format_time
from ringleader.constants import Phase
from ringleader.controller import Controller
from ringleader.kube import KubeApi, RetryableError
from ringleader.reconcile import plan_children, plan_reconcile
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.statusstore import Obj
from tests.unit.operator.test_reconcile_plan import NOW, running
from tests.unit.operator.test_reconcile_recovery import settled
from tests.unit.operator.test_stale_reads import WritesKept
from tests.unit.operator.workers import is_called, known_names, slot_of

DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_a_worker_pod_is_named_by_its_slot_and_five_characters_of_generate_names_alphabet() -> None:
    name = builders.build_worker_pod(parse(make_job()), 1, 2)["metadata"]["name"]
    assert re.fullmatch("digits-worker-1-a2-[bcdfghjklmnpqrstvwxz2456789]{5}", name)


def test_every_incarnation_of_a_slot_draws_a_name_of_its_own() -> None:
    job = parse(make_job())
    made = {builders.build_worker_pod(job, 0, 0)["metadata"]["name"] for _ in range(50)}
    # 27^5 tokens: two of 50 alike about once in 10^4 runs, three alike never in practice.
    assert len(made) >= 49


def test_the_longest_job_name_keeps_the_host_name_a_dns_label_and_the_pod_name_valid() -> None:
    longest = "j" * 45  # constants.MAX_JOB_NAME_LENGTH, the CEL rule's bound
    job = parse(make_job({"replicas": 10000}, name=longest))  # the most replicas allowed
    pod = builders.build_worker_pod(job, 9999, 123456)
    assert len(pod["spec"]["hostname"]) <= 63  # a DNS label: the host name in resolv.conf
    name = pod["metadata"]["name"]
    assert len(name) <= 253 and DNS_1123_SUBDOMAIN.fullmatch(name)


def workers_of(job: Obj, attempt: int = 0) -> list[Obj]:
    """Running worker pods of the job, one per slot, as created at NOW - 60 s."""
    out = []
    for pod in builders.build_worker_pods(parse(job), attempt):
        pod["metadata"]["creationTimestamp"] = format_time(NOW - timedelta(seconds=60))
        out.append(running(pod))
    return out


def workers_in(create: list[Obj]) -> list[str]:
    """The slots of the worker pods among the children to create."""
    return sorted(slot_of(p) for p in create if pods.is_worker(p))


def test_a_missing_slot_is_created_and_only_that_one() -> None:
    job = make_job({"replicas": 3})
    children = [w for w in workers_of(job) if not is_called(w, "digits-worker-1-a0")]
    create, delete = plan_children(parse(job), 0, Phase.RUNNING, children)
    assert workers_in(create) == ["digits-worker-1-a0"]
    assert delete == []


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": {"deletionTimestamp": format_time(NOW)}},
        {"status": {"phase": "Failed"}},
        {"status": {"phase": "Succeeded"}},
    ],
    ids=["leaving", "failed", "succeeded"],
)
def test_a_leaving_or_finished_pod_holds_its_slot_until_it_is_gone(change: Obj) -> None:
    job = make_job()
    children = workers_of(job)
    for key, value in change.items():
        children[1][key] = {**children[1][key], **value}
    create, _ = plan_children(parse(job), 0, Phase.RESTARTING, children)
    assert workers_in(create) == []  # never two incarnations of a worker at once


def test_the_pods_of_another_attempt_hold_no_slot_of_this_one() -> None:
    job = make_job()
    old = workers_of(job, attempt=0)
    for pod in old:
        pod["metadata"]["deletionTimestamp"] = format_time(NOW)  # the old gang terminating
    create, delete = plan_children(parse(job), 1, Phase.RESTARTING, old)
    assert workers_in(create) == ["digits-worker-0-a1", "digits-worker-1-a1"]
    assert delete == []  # leaving already


def twice_in_slot_1(job: Obj, second_created: str) -> tuple[list[Obj], Obj, Obj]:
    """The job's workers with a second pod in slot 1 (created at `second_created`)."""
    children = workers_of(job)
    first = children[1]
    second = copy.deepcopy(first)
    second["metadata"]["name"] = naming.worker_pod_name("digits", 1, 0, "zzzzz")
    second["metadata"]["creationTimestamp"] = second_created
    return [*children, second], first, second


def test_a_slot_filled_twice_keeps_its_oldest_pod() -> None:
    job = make_job()
    later = format_time(NOW - timedelta(seconds=5))
    children, _, second = twice_in_slot_1(job, later)
    create, delete = plan_children(parse(job), 0, Phase.RUNNING, children)
    assert (workers_in(create), delete) == ([], [second["metadata"]["name"]])


def test_two_pods_of_a_slot_created_in_the_same_second_keep_the_first_by_name() -> None:
    job = make_job()
    children, first, second = twice_in_slot_1(job, format_time(NOW - timedelta(seconds=60)))
    first["metadata"]["name"] = naming.worker_pod_name("digits", 1, 0, "bbbbb")
    _, delete = plan_children(parse(job), 0, Phase.RUNNING, children)
    assert delete == [second["metadata"]["name"]]


def test_a_pod_leaving_its_slot_is_no_duplicate_of_the_one_that_stays() -> None:
    job = make_job()
    children, first, _ = twice_in_slot_1(job, format_time(NOW))
    first["metadata"]["deletionTimestamp"] = format_time(NOW)
    create, delete = plan_children(parse(job), 0, Phase.RUNNING, children)
    assert (workers_in(create), delete) == ([], [])


def test_a_reconcile_removes_a_duplicate_and_creates_nothing_for_its_slot() -> None:
    job, children = settled()
    duplicate = copy.deepcopy(next(c for c in children if is_called(c, "digits-worker-1-a0")))
    duplicate["metadata"]["name"] = naming.worker_pod_name("digits", 1, 0, "zzzzz")
    duplicate["metadata"]["creationTimestamp"] = format_time(NOW)  # the others have none
    children = [*children, duplicate]
    for child in children:
        child["metadata"].setdefault("creationTimestamp", format_time(NOW - timedelta(days=1)))
    plan = plan_reconcile(job, children, NOW)
    assert plan.delete_pods == [duplicate["metadata"]["name"]]
    assert plan.create == [] and plan.status_patch is None


class LosesAnswers(WritesKept):
    """Creates every pod it is asked to (kept in `pods`, with a uid and a creation time), but
    the answers to the creations numbered in `lost` (0: the first) never come back."""

    def __init__(self, lost: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.pods: list[Obj] = []
        self.lost = lost

    def create(self, obj: Obj) -> Obj | None:
        made = copy.deepcopy(obj)
        made["metadata"]["uid"] = f"uid-{len(self.pods)}"
        made["metadata"]["creationTimestamp"] = format_time(NOW + timedelta(len(self.pods)))
        self.pods.append(made)
        super().create(made)
        if len(self.pods) - 1 in self.lost:
            raise RetryableError("create Pod: no answer: ReadTimeoutError")
        return made


def controller_missing_worker_1(api: WritesKept) -> tuple[Controller, tuple[str, str], list[Obj]]:
    """A controller whose cache holds a running job whose worker 1 is gone."""
    job, children = settled()
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()  # where retry timers go; never run
    key = controller.cache.put_job(api.hold(job))
    kept = [c for c in children if not is_called(c, "digits-worker-1-a0")]
    for child in kept:
        controller.cache.put_child(child)
    return controller, key, kept


def stop(controller: Controller) -> None:
    if controller.loop is not None:
        controller.loop.close()


def test_a_worker_just_created_is_remembered_so_the_next_pass_creates_no_second() -> None:
    api = LosesAnswers()
    controller, key, _ = controller_missing_worker_1(api)
    try:
        for _ in range(3):  # woken again before the watch reports the new pod
            controller._reconcile(key)
    finally:
        stop(controller)
    assert [slot_of(p) for p in api.pods] == ["digits-worker-1-a0"]


def test_workers_created_before_a_failed_call_are_remembered_too() -> None:
    api = LosesAnswers(lost=frozenset({1}))
    controller, key, kept = controller_missing_worker_1(api)
    worker_0 = next(c for c in kept if is_called(c, "digits-worker-0-a0"))
    controller.cache.put_child(worker_0, deleted=True)  # worker 0 went too
    try:
        controller._reconcile(key)  # slot 0 created; slot 1 created, its answer lost
        controller._reconcile(key)
    finally:
        stop(controller)
    # Slot 0's pod was remembered though the pass failed after it: never made again. Slot 1's,
    # whose answer was lost, is unknown until the watch reports it: made again.
    assert [slot_of(p) for p in api.pods] == [
        "digits-worker-0-a0",
        "digits-worker-1-a0",
        "digits-worker-1-a0",
    ]


def test_a_create_whose_answer_was_lost_leaves_one_pod_in_its_slot_once_the_watch_reports() -> None:
    api = LosesAnswers(lost=frozenset({0}))
    controller, key, _ = controller_missing_worker_1(api)
    try:
        controller._reconcile(key)  # created, but the answer lost: not known to the cache
        controller._reconcile(key)  # so its slot looks empty and is created again
        assert [slot_of(p) for p in api.pods] == ["digits-worker-1-a0", "digits-worker-1-a0"]
        for pod in api.pods:  # the watch reports both
            controller.cache.put_child(running(pod))
        api.deleted.clear()
        controller._reconcile(key)
    finally:
        stop(controller)
    assert api.deleted == [api.pods[1]["metadata"]["name"]]  # the newer one goes
    assert len(api.pods) == 2
    assert known_names(api.deleted, api.pods) == ["digits-worker-1-a0"]
