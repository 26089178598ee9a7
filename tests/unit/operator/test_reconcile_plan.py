"""plan_reconcile: from a job and the children the operator sees, what one reconcile does."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ringleader import builders, pods
from ringleader.apitime import format_time
from ringleader.reconcile import Plan, plan_reconcile
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.workers import is_called, known_as, known_names, name_in

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
Obj = dict[str, Any]


def running(pod: Obj) -> Obj:
    """The pod as the API reports it once it runs and is ready."""
    pod = copy.deepcopy(pod)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return pod


def finished(pod: Obj, phase: str) -> Obj:
    pod = copy.deepcopy(pod)
    pod["status"] = {"phase": phase}
    return pod


def settle(job: Obj, children: list[Obj]) -> tuple[Obj, list[Obj]]:
    """Reconcile until nothing is left to do, with every created pod coming up at once."""
    for _ in range(5):
        plan = plan_reconcile(job, children, NOW)
        if not (plan.status_patch or plan.create or plan.delete_pods):
            return job, children
        job = {**job, "status": {**(job.get("status") or {}), **(plan.status_patch or {})}}
        kept = [c for c in children if c["metadata"]["name"] not in plan.delete_pods]
        made = [running(c) if c["kind"] == "Pod" else c for c in plan.create]
        children = kept + made
    raise AssertionError("the plan did not settle in 5 rounds")


def names(objects: list[Obj]) -> list[str]:
    """Kind/name of each object, a worker by its slot (tests.unit.operator.workers)."""
    return sorted(f"{o['kind']}/{known_as(o)}" for o in objects)


def test_a_new_job_gets_its_services_store_and_workers_and_a_status_counting_them() -> None:
    job = make_job()
    plan = plan_reconcile(job, [], NOW)
    assert names(plan.create) == [
        "Pod/digits-rdzv",
        "Pod/digits-worker-0-a0",
        "Pod/digits-worker-1-a0",
        "Service/digits-workers",  # the rendezvous pod's subdomain too
    ]
    assert plan.status_patch is not None
    # Written just before the workers are made: they are counted as the Pending pods the next
    # pass sees, which then has nothing to write (no "Pending", then "Starting", to announce).
    said = plan.status_patch
    assert (said["phase"], said["workers"], said["replicas"]) == ("Starting", "0/2", 2)
    assert said["rendezvousEndpoint"] == "digits-rdzv.digits-workers.team-a.svc:29400"
    assert [e.reason for e in plan.events] == ["WorkersStarting"]
    assert plan.delete_pods == []
    job = {**job, "status": said}
    made = [finished(x, "Pending") if x["kind"] == "Pod" else x for x in plan.create]
    assert plan_reconcile(job, made, NOW) == Plan()


def test_a_job_whose_pods_all_run_settles_running_and_then_plans_nothing() -> None:
    job, children = settle(make_job(), [])
    assert job["status"]["phase"] == "Running"
    assert job["status"]["workers"] == "2/2"
    assert plan_reconcile(job, children, NOW) == Plan()


def test_a_job_with_a_size_gets_its_checkpoint_claim() -> None:
    job = make_job({"checkpoint": {"size": "5Gi"}})
    assert "PersistentVolumeClaim/digits-checkpoint" in names(plan_reconcile(job, [], NOW).create)


def test_a_failed_worker_under_a_gang_rule_restarts_every_worker_under_the_next_attempt() -> None:
    job, children = settle(make_job({"failurePolicy": {"rules": [{"action": "RestartGang"}]}}), [])
    children = [
        finished(c, "Failed") if is_called(c, "digits-worker-1-a0") else c for c in children
    ]
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None
    assert (plan.status_patch["restartAttempt"], plan.status_patch["restarts"]) == (1, 1)
    assert plan.status_patch["phase"] == "Restarting"
    assert known_names(plan.delete_pods, children) == ["digits-worker-0-a0", "digits-worker-1-a0"]
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]
    assert plan.events[0][:2] == ("Warning", "WorkerFailed")


def test_a_failed_worker_with_no_restarts_left_fails_the_job_and_stops_the_rest() -> None:
    job, children = settle(make_job({"failurePolicy": {"maxRestarts": 0}}), [])
    children = [
        finished(c, "Failed") if is_called(c, "digits-worker-0-a0") else c for c in children
    ]
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["phase"] == "Failed"
    failed = {c["type"]: c for c in plan.status_patch["conditions"]}["Failed"]
    assert failed["reason"] == "MaxRestartsExceeded"
    assert plan.create == []
    assert known_names(plan.delete_pods, children) == ["digits-rdzv", "digits-worker-1-a0"]


def test_suspending_deletes_every_running_pod_and_creates_nothing() -> None:
    job, children = settle(make_job(), [])
    job["spec"]["runPolicy"] = {"suspend": True}
    plan = plan_reconcile(job, children, NOW)
    assert plan.create == []
    assert known_names(plan.delete_pods, children) == [
        "digits-rdzv",
        "digits-worker-0-a0",
        "digits-worker-1-a0",
    ]
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Suspended"


ELASTIC = {"elastic": {"minReplicas": 1, "maxReplicas": 4}}


def test_scaling_an_elastic_job_down_deletes_the_highest_workers_only() -> None:
    job, children = settle(make_job({"replicas": 3, **ELASTIC}), [])
    job["spec"]["replicas"] = 1
    plan = plan_reconcile(job, children, NOW)
    assert known_names(plan.delete_pods, children) == ["digits-worker-1-a0", "digits-worker-2-a0"]
    assert plan.create == [] and plan.events == []


def test_scaling_an_elastic_job_up_adds_workers_to_the_same_attempt() -> None:
    job, children = settle(make_job({"replicas": 2, **ELASTIC}), [])
    job["spec"]["replicas"] = 4
    plan = plan_reconcile(job, children, NOW)
    assert names(plan.create) == ["Pod/digits-worker-2-a0", "Pod/digits-worker-3-a0"]
    assert plan.delete_pods == [] and plan.events == []


def test_scaling_a_fixed_size_job_restarts_the_gang_at_the_new_size() -> None:
    job, children = settle(make_job({"replicas": 3}), [])
    job["spec"]["replicas"] = 2
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None and plan.status_patch["restartAttempt"] == 1
    assert "restarts" not in plan.status_patch  # not a failure
    assert known_names(plan.delete_pods, children) == [
        "digits-worker-0-a0",
        "digits-worker-1-a0",
        "digits-worker-2-a0",
    ]
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]
    assert plan.events[0] == (
        "Normal",
        "RestartingAtNewSize",
        "scaled from 3 to 2 workers: the gang restarts from its newest checkpoint at the new "
        "size (a fixed-size job; spec.elastic resizes in place)",
    )
    job, children = settle(job, children)
    assert (job["status"]["phase"], job["status"]["restartAttempt"]) == ("Running", 1)


def test_a_deadline_in_the_future_asks_to_be_woken_when_it_passes() -> None:
    job, children = settle(make_job({"runPolicy": {"activeDeadlineSeconds": 60}}), [])
    job["status"]["startTime"] = format_time(NOW - timedelta(seconds=45))
    plan = plan_reconcile(job, children, NOW)
    assert plan.requeue_after == 15


def test_a_deadline_in_the_past_fails_the_job_with_deadline_exceeded() -> None:
    job, children = settle(make_job({"runPolicy": {"activeDeadlineSeconds": 60}}), [])
    job["status"]["startTime"] = format_time(NOW - timedelta(seconds=61))
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["phase"] == "Failed"
    failed = {c["type"]: c for c in plan.status_patch["conditions"]}["Failed"]
    assert failed["reason"] == "DeadlineExceeded"
    assert len(plan.delete_pods) == 3


def test_a_finished_job_is_deleted_once_its_ttl_has_passed() -> None:
    job = make_job({"runPolicy": {"ttlSecondsAfterFinished": 30}})
    done = format_time(NOW - timedelta(seconds=31))
    job["status"] = {"phase": "Succeeded", "completionTime": done, "startTime": done}
    assert plan_reconcile(job, [], NOW).delete_job is True
    job["status"]["completionTime"] = format_time(NOW - timedelta(seconds=10))
    plan = plan_reconcile(job, [], NOW)
    assert (plan.delete_job, plan.requeue_after) == (False, 20)


def test_workers_that_all_succeed_make_the_job_succeed_and_remove_the_store() -> None:
    job, children = settle(make_job(), [])
    children = [
        finished(c, "Succeeded") if "worker" in c["metadata"]["name"] else c for c in children
    ]
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Succeeded"
    assert plan.delete_pods == ["digits-rdzv"]
    assert plan.events[-1][:2] == ("Normal", "AllWorkersSucceeded")


def test_a_worker_that_exited_0_before_its_phase_says_so_is_kept_for_its_logs() -> None:
    # A kubelet writes the containers' exits a moment before the pod's phase: the job already
    # Succeeds on them, and the worker still Running by its phase must not be deleted with the
    # store (its logs would go: `kubectl logs` after a job is what users do).
    job, children = settle(make_job(), [])
    exited = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    after = copy.deepcopy(children)
    for worker in filter(pods.is_worker, after):
        worker["status"]["containerStatuses"] = [{"name": "trainer", "state": exited}]
    plan = plan_reconcile(job, after, NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Succeeded"
    assert plan.delete_pods == ["digits-rdzv"]


def test_the_phase_that_ends_a_job_comes_with_the_workers_last_report() -> None:
    job, children = settle(make_job(), [])
    job["status"]["progress"] = {"step": 315, "updatedAt": format_time(NOW)}
    last = {"step": 345, "updated_at": NOW.timestamp(), "checkpoint": {"step": 345, "path": "p"}}
    children = [with_last_words(c, json.dumps(last)) for c in children]
    patch = plan_reconcile(job, children, NOW).status_patch
    assert patch is not None and patch["phase"] == "Succeeded"
    assert (patch["progress"]["step"], patch["checkpoint"]["step"]) == (345, 345)
    finished_job = {**job, "status": {**job["status"], **patch}}
    assert plan_reconcile(finished_job, children, NOW).status_patch is None


def with_last_words(pod: Obj, message: str) -> Obj:
    """A worker pod that succeeded leaving `message` as its termination message."""
    if "worker" not in pod["metadata"]["name"]:
        return pod
    pod = finished(pod, "Succeeded")
    terminated = {"exitCode": 0, "reason": "Completed", "message": message}
    pod["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return pod


def test_a_job_being_deleted_is_left_to_the_garbage_collector() -> None:
    job = make_job()
    job["metadata"]["deletionTimestamp"] = format_time(NOW)
    workers = builders.build_worker_pods(parse(job), 0)
    assert plan_reconcile(job, workers, NOW) == Plan()


def test_a_detected_hang_restarts_the_gang_names_the_stalled_worker_and_clears_itself() -> None:
    job, children = settle(make_job(), [])
    stalled = name_in(children, "digits-worker-1-a0")
    job["status"]["hang"] = {
        "step": 40,
        "stalledSeconds": 31,
        "stalledPods": [stalled],
        "detectedAt": format_time(NOW),
    }
    plan = plan_reconcile(job, children, NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["restartAttempt"] == 1
    assert plan.status_patch["hang"] is None
    assert plan.status_patch["lastFailure"]["class"] == "Hang"
    assert plan.status_patch["restartsByClass"] == {"Hang": 1}
    event_type, reason, message = plan.events[0]
    assert (event_type, reason) == ("Warning", "HangDetected")
    assert stalled in message and "after step 40" in message
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]


def test_the_rendezvous_endpoint_is_written_once_so_a_crd_that_prunes_it_makes_no_loop() -> None:
    # An operator newer than its CRD: the API server drops the field it does not know.
    first = plan_reconcile(make_job(), [], NOW)
    assert first.status_patch is not None and "rendezvousEndpoint" in first.status_patch
    pruned = {k: v for k, v in first.status_patch.items() if k != "rendezvousEndpoint"}
    job = {**make_job(), "status": pruned}
    made = [running(x) if x["kind"] == "Pod" else x for x in first.create]
    job, children = settle(job, made)  # settles: the endpoint is not patched again and again
    assert "rendezvousEndpoint" not in job["status"]
    # Read as a job an older operator started: the rendezvous gets its own Service too, so the
    # name its workers were given and the older one both resolve.
    assert "Service/digits-rdzv" in names(children)
