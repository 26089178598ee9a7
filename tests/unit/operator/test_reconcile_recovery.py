"""plan_reconcile with failed workers: classes, the failure policy's actions, status, events."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from ringleader.reconcile import Plan, plan_reconcile
from tests.unit.operator.jobs import make_job
from tests.unit.operator.test_reconcile_plan import NOW, names, settle
from tests.unit.operator.workers import is_called, known_names, name_in

Obj = dict[str, Any]
OOM = {"exitCode": 137, "reason": "OOMKilled", "message": "out of memory"}
USER = {"exitCode": 1, "reason": "Error", "message": "ValueError: bad config"}


def settled(spec: Obj | None = None) -> tuple[Obj, list[Obj]]:
    """A running job of two workers, each pod with a uid as the API gives it."""
    job, children = settle(make_job(spec), [])
    for child in children:
        child["metadata"]["uid"] = f"uid-{child['metadata']['name']}"
    return job, children


def fail(children: list[Obj], name: str, terminated: Obj) -> list[Obj]:
    """The children with one worker (by name or slot) Failed, its container terminated as
    given."""
    out = copy.deepcopy(children)
    for child in out:
        if is_called(child, name):
            state = {"terminated": terminated}
            child["status"] = {"phase": "Failed", "containerStatuses": [{"state": state}]}
    return out


def preempt(children: list[Obj], name: str) -> list[Obj]:
    """The children with one worker (by name or slot) being deleted by the scheduler to make
    room."""
    out = copy.deepcopy(children)
    for child in out:
        if is_called(child, name):
            child["metadata"]["deletionTimestamp"] = "2026-05-06T07:08:00Z"
            cond = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
            child["status"]["conditions"].append(cond)
    return out


def apply(job: Obj, plan: Plan) -> Obj:
    """The job after the plan's status patch (a merge patch: None removes a key)."""
    status = {**(job.get("status") or {}), **(plan.status_patch or {})}
    return {**job, "status": status}


def condition(plan: Plan, kind: str) -> Obj:
    assert plan.status_patch is not None
    found: Obj = {c["type"]: c for c in plan.status_patch["conditions"]}[kind]
    return found


GANG = {"failurePolicy": {"rules": [{"action": "RestartGang"}]}}  # matches every failure


def test_an_oom_killed_worker_is_replaced_in_place_and_the_failure_recorded() -> None:
    job, children = settled()
    failed = name_in(children, "digits-worker-1-a0")
    plan = plan_reconcile(job, fail(children, failed, OOM), NOW)
    patch = plan.status_patch
    assert patch is not None
    assert "restartAttempt" not in patch  # the survivor stays: still attempt 0
    assert patch["restarts"] == 1
    assert patch["restartsByClass"] == {"OutOfMemory": 1}
    assert patch["lastFailure"] == {
        "class": "OutOfMemory",
        "pod": failed,
        "podUID": f"uid-{failed}",
        "exitCode": 137,
        "reason": "OOMKilled",
        "message": "out of memory",
        "action": "RestartWorker",
        "time": "2026-05-06T07:08:09Z",
        "stepsLost": None,  # no progress reported yet
        "inARow": 1,
    }
    assert plan.events[0] == (
        "Warning",
        "WorkerFailed",
        f"worker {failed} failed (OutOfMemory, exit 137): replacing that worker (restart 1 of 10)",
    )
    assert plan.delete_pods == [failed]


def test_a_gang_rule_restarts_every_worker_under_the_next_attempt() -> None:
    job, children = settled(GANG)
    plan = plan_reconcile(job, fail(children, "digits-worker-1-a0", OOM), NOW)
    patch = plan.status_patch
    assert patch is not None
    assert (patch["restartAttempt"], patch["restarts"]) == (1, 1)
    assert patch["lastFailure"]["action"] == "RestartGang"
    assert "restarting the gang (restart 1 of 10)" in plan.events[0][2]
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]


def test_steps_since_the_newest_checkpoint_are_recorded_as_lost() -> None:
    job, children = settled()
    job["status"]["progress"] = {"step": 57, "updatedAt": "2026-05-06T07:08:05Z"}
    job["status"]["checkpoint"] = {"step": 40, "time": "2026-05-06T07:08:00Z"}
    plan = plan_reconcile(job, fail(children, "digits-worker-1-a0", OOM), NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["lastFailure"]["stepsLost"] == 17


def test_after_a_gang_restart_settles_the_next_reconcile_plans_nothing() -> None:
    job, children = settled(GANG)
    job, children = settle(job, fail(children, "digits-worker-1-a0", OOM))
    assert job["status"]["phase"] == "Running"
    assert job["status"]["lastFailure"]["class"] == "OutOfMemory"
    assert plan_reconcile(job, children, NOW) == Plan()


def test_a_preempted_worker_is_replaced_without_using_up_a_restart() -> None:
    job, children = settled({"failurePolicy": {"maxRestarts": 0}})
    plan = plan_reconcile(job, preempt(children, "digits-worker-0-a0"), NOW)
    patch = plan.status_patch
    assert patch is not None
    assert "restartAttempt" not in patch and patch.get("restarts", 0) == 0
    assert patch["restartsByClass"] == {"Preempted": 1}
    assert patch["lastFailure"]["reason"] == "PreemptionByScheduler"
    assert "not counted towards maxRestarts: Preempted" in plan.events[0][2]


def test_a_fail_job_rule_fails_the_job_at_once_naming_the_class() -> None:
    rules = [{"classes": ["UserError"], "action": "FailJob"}]
    job, children = settled({"failurePolicy": {"maxRestarts": 5, "rules": rules}})
    plan = plan_reconcile(job, fail(children, "digits-worker-0-a0", USER), NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Failed"
    failed = condition(plan, "Failed")
    assert failed["reason"] == "FailedByPolicy"
    assert failed["message"] == (
        f"worker {name_in(children, 'digits-worker-0-a0')} failed (UserError, exit 1): "
        "the failure policy fails the job on UserError"
    )
    assert plan.status_patch["lastFailure"]["action"] == "FailJob"
    assert "restartsByClass" not in plan.status_patch
    assert plan.create == []
    assert known_names(plan.delete_pods, children) == ["digits-rdzv", "digits-worker-1-a0"]


def test_used_up_restarts_fail_the_job_with_the_class_in_the_message() -> None:
    job, children = settled({"failurePolicy": {"maxRestarts": 0}})
    plan = plan_reconcile(job, fail(children, "digits-worker-1-a0", OOM), NOW)
    failed = condition(plan, "Failed")
    assert failed["reason"] == "MaxRestartsExceeded"
    assert "(OutOfMemory, exit 137)" in failed["message"]


def test_restart_worker_replaces_only_the_failed_pod_under_the_same_attempt() -> None:
    rules = [{"classes": ["OutOfMemory"], "action": "RestartWorker"}]
    job, children = settled({"failurePolicy": {"rules": rules}})
    children = fail(children, "digits-worker-1-a0", OOM)
    plan = plan_reconcile(job, children, NOW)
    assert known_names(plan.delete_pods, children) == ["digits-worker-1-a0"]
    assert plan.create == []  # the slot frees up first
    patch = plan.status_patch
    assert patch is not None
    assert "restartAttempt" not in patch  # still attempt 0
    assert (patch["restarts"], patch["phase"]) == (1, "Restarting")
    assert patch["restartsByClass"] == {"OutOfMemory": 1}
    assert "replacing that worker (restart 1 of 10)" in plan.events[0][2]
    job = apply(job, plan)
    gone = [c for c in children if not is_called(c, "digits-worker-1-a0")]
    again = plan_reconcile(job, gone, NOW)
    assert names(again.create) == ["Pod/digits-worker-1-a0"]
    assert again.create[0]["metadata"]["name"] not in plan.delete_pods  # a name of its own
    assert again.delete_pods == []
    job, children = settle(job, gone)
    assert (job["status"]["phase"], job["status"]["restarts"]) == ("Running", 1)


def test_a_replaced_worker_is_counted_once_even_if_its_deletion_was_lost() -> None:
    rules = [{"action": "RestartWorker"}]
    job, children = settled({"failurePolicy": {"rules": rules}})
    children = fail(children, "digits-worker-0-a0", USER)
    job = apply(job, plan_reconcile(job, children, NOW))
    # The operator died before its delete: the failed pod is still there, unchanged.
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=5))
    assert known_names(plan.delete_pods, children) == ["digits-worker-0-a0"]
    assert plan.status_patch is None and plan.events == []
    # Its deletion under way: neither counted again nor deleted again, nor recreated yet.
    pod = next(c for c in children if is_called(c, "digits-worker-0-a0"))
    pod["metadata"]["deletionTimestamp"] = "2026-05-06T07:08:10Z"
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=6))
    assert (plan.delete_pods, plan.create, plan.events) == ([], [], [])
    assert plan.status_patch is not None  # only the Restarting message's counts move
    assert {"restarts", "lastFailure", "restartsByClass"}.isdisjoint(plan.status_patch)


def test_of_two_failures_at_once_the_furthest_reaching_action_wins() -> None:
    rules = [
        {"classes": ["OutOfMemory"], "action": "RestartWorker"},
        {"classes": ["UserError"], "action": "FailJob"},
    ]
    job, children = settled({"failurePolicy": {"rules": rules}})
    children = fail(fail(children, "digits-worker-0-a0", OOM), "digits-worker-1-a0", USER)
    plan = plan_reconcile(job, children, NOW)
    assert condition(plan, "Failed")["reason"] == "FailedByPolicy"
    assert plan.status_patch is not None
    assert plan.status_patch["lastFailure"]["pod"] == name_in(children, "digits-worker-1-a0")


def test_a_second_gang_restart_soon_after_the_first_waits_out_its_backoff() -> None:
    job, children = settled(GANG)
    job, children = settle(job, fail(children, "digits-worker-1-a0", OOM))
    for child in children:
        child["metadata"].setdefault("uid", f"uid2-{child['metadata']['name']}")
    children = fail(children, "digits-worker-0-a1", OOM)
    early = plan_reconcile(job, children, NOW + timedelta(seconds=0.5))
    assert early.requeue_after == 1.5
    assert early.status_patch is not None and early.status_patch["phase"] == "Restarting"
    assert "restartAttempt" not in early.status_patch and early.create == []
    job = apply(job, early)
    late = plan_reconcile(job, children, NOW + timedelta(seconds=2))
    assert late.status_patch is not None
    assert (late.status_patch["restartAttempt"], late.status_patch["restarts"]) == (2, 2)
    assert late.status_patch["restartsByClass"] == {"OutOfMemory": 2}
    assert late.status_patch["lastFailure"]["inARow"] == 2


def test_a_checkpoint_between_two_failures_means_no_backoff() -> None:
    job, children = settled(GANG)
    job, children = settle(job, fail(children, "digits-worker-1-a0", OOM))
    for child in children:
        child["metadata"].setdefault("uid", f"uid2-{child['metadata']['name']}")
    job["status"]["checkpoint"] = {"step": 20, "time": "2026-05-06T07:08:10Z"}
    children = fail(children, "digits-worker-0-a1", OOM)
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=2))
    assert plan.requeue_after is None
    assert plan.status_patch is not None
    assert plan.status_patch["restartAttempt"] == 2
    assert plan.status_patch["lastFailure"]["inARow"] == 1


def replaced_in_place() -> tuple[Obj, list[Obj]]:
    """A job whose worker 1 was replaced at NOW; both workers run since NOW + 10 s."""
    job, children = settled()
    job["status"]["progress"] = {"step": 57, "updatedAt": "2026-05-06T07:08:05Z"}
    job, children = settle(job, fail(children, "digits-worker-1-a0", OOM))
    started = {"running": {"startedAt": "2026-05-06T07:08:19Z"}}
    for child in children:
        if child["kind"] == "Pod" and child["status"].get("phase") == "Running":
            child["status"]["containerStatuses"] = [{"state": started}]
    return job, children


def test_an_in_place_recovery_without_a_step_becomes_a_gang_restart_when_its_time_is_up() -> None:
    job, children = replaced_in_place()
    assert job["status"]["lastFailure"]["action"] == "RestartWorker"
    waiting = plan_reconcile(job, children, NOW + timedelta(seconds=100))
    assert waiting.status_patch is None and waiting.delete_pods == []
    assert waiting.requeue_after == 300 - 90 + 1  # timed from the last worker running
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=310))
    patch = plan.status_patch
    assert patch is not None
    assert (patch["restartAttempt"], patch.get("restarts", 1)) == (1, 1)  # not counted again
    assert patch["lastFailure"]["reason"] == "InPlaceRecoveryTimedOut"
    assert patch["lastFailure"]["action"] == "RestartGang"
    assert plan.events[0][2] == (
        f"in-place recovery of {job['status']['lastFailure']['pod']} did not resume training: "
        "restarting the gang (counted with the failure it follows)"
    )
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]


def test_an_in_place_recovery_that_trained_a_step_is_left_alone() -> None:
    job, children = replaced_in_place()
    job["status"]["progress"] = {"step": 41, "updatedAt": "2026-05-06T07:08:25Z"}
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=900))
    assert plan == Plan()


def test_a_replacement_still_pending_is_not_an_in_place_recovery_that_failed() -> None:
    job, children = replaced_in_place()
    for child in children:
        if is_called(child, "digits-worker-1-a0"):
            child["status"] = {"phase": "Pending"}
    plan = plan_reconcile(job, children, NOW + timedelta(seconds=900))
    assert plan.status_patch is None or "lastFailure" not in plan.status_patch
    assert plan.create == [] and plan.requeue_after is None
