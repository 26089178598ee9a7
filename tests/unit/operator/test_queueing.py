"""A job queued with Kueue (kueue.x-k8s.io/queue-name), through plan_reconcile: its Workload
first and nothing else, pods only once admitted (with the flavors' placement and the admitted
count), stopped and queued again when evicted, the Workload finished when the job ends.
tests/schedulers/test_kueue_jobs.py runs the same against the real Kueue."""

from __future__ import annotations

import copy
from typing import Any

from ringleader import kueueworkload as kw
from ringleader.models import parse_job
from ringleader.queueing import KueueFacts
from ringleader.reconcile import Plan, plan_reconcile
from tests.unit.operator.jobs import make_job
from tests.unit.operator.test_reconcile_plan import NOW, finished, names, running
from tests.unit.operator.workers import known_names

Obj = dict[str, Any]
TOLERATION = {"key": "pool", "operator": "Equal", "value": "a", "effect": "NoSchedule"}
FLAVOR = {
    "metadata": {"name": "pool-a"},
    "spec": {"nodeLabels": {"pool": "a"}, "tolerations": [TOLERATION]},
}


def queued_job(spec: Obj | None = None, status: Obj | None = None) -> Obj:
    job = make_job(spec)
    job["metadata"]["labels"] = {kw.QUEUE_LABEL: "team"}
    if status:
        job["status"] = status
    return job


def workload(conditions: list[Obj], admission: Obj | None = None) -> Obj:
    body = kw.build_workload(parse_job(queued_job()), "team", None)
    body["status"] = {"conditions": conditions, **({"admission": admission} if admission else {})}
    return body


def condition(kind: str, status: str = "True", message: str = "") -> Obj:
    return {"type": kind, "status": status, "reason": kind, "message": message}


def admitted(count: int = 2) -> Obj:
    assignment = {"name": kw.WORKERS, "count": count, "flavors": {"nvidia.com/gpu": "pool-a"}}
    admission = {"clusterQueue": "cq", "podSetAssignments": [assignment]}
    return workload([condition("QuotaReserved"), condition("Admitted")], admission)


def phase_of(plan: Plan) -> tuple[str, str, str]:
    patch = plan.status_patch or {}
    own = next(c for c in patch["conditions"] if c["status"] == "True")
    return patch["phase"], own["reason"], own["message"]


def test_a_queued_job_gets_its_workload_and_nothing_else() -> None:
    plan = plan_reconcile(queued_job(), [], NOW)
    assert plan.create == [] and plan.workload is not None
    assert plan.workload["spec"]["queueName"] == "team"
    labels = plan.workload["metadata"]["labels"]
    assert (labels["ringleader.dev/job-name"], labels[kw.JOB_UID_LABEL]) == ("digits", "uid-1")
    phase, reason, message = phase_of(plan)
    assert (phase, reason) == ("Queued", "WaitingForAdmission")
    assert "in queue team" in message


def test_the_workload_carries_the_value_of_the_jobs_priority_class() -> None:
    job = queued_job({"scheduling": {"priorityClassName": "urgent"}})
    plan = plan_reconcile(job, [], NOW, kueue=KueueFacts(priority=1000))
    assert plan.workload is not None
    assert plan.workload["spec"]["priority"] == 1000
    assert plan.workload["spec"]["priorityClassRef"]["name"] == "urgent"


def test_while_kueue_reserves_no_quota_the_job_waits_saying_why() -> None:
    waiting = workload([condition("QuotaReserved", "False", "insufficient quota for gpu")])
    plan = plan_reconcile(queued_job(), [waiting], NOW)
    assert plan.create == [] and plan.workload is None
    phase, _, message = phase_of(plan)
    assert phase == "Queued" and message == "in queue team: insufficient quota for gpu"


def test_an_admitted_job_runs_where_its_flavors_say() -> None:
    facts = KueueFacts(flavors={"pool-a": FLAVOR})
    plan = plan_reconcile(queued_job(), [admitted()], NOW, kueue=facts)
    assert names(plan.create) == [
        "Pod/digits-rdzv",
        "Pod/digits-worker-0-a0",
        "Pod/digits-worker-1-a0",
        "Service/digits-workers",
    ]
    for pod in (p for p in plan.create if p["kind"] == "Pod"):
        assert pod["spec"]["nodeSelector"]["pool"] == "a"
        assert TOLERATION in pod["spec"]["tolerations"]


def test_an_elastic_job_admitted_in_part_runs_the_count_kueue_gave() -> None:
    job = queued_job({"replicas": 3, "elastic": {"minReplicas": 1, "maxReplicas": 3}})
    plan = plan_reconcile(job, [admitted(count=2)], NOW)
    workers = [n for n in names(plan.create) if n.startswith("Pod/digits-worker")]
    assert workers == ["Pod/digits-worker-0-a0", "Pod/digits-worker-1-a0"]


def evicted() -> Obj:
    conditions = [
        condition("QuotaReserved"),
        condition("Admitted"),
        condition("Evicted", message="Preempted to accommodate a workload (UID: 1)"),
    ]
    body = admitted()
    body["status"]["conditions"] = conditions
    return body


def test_an_evicted_job_stops_its_workers_without_counting_a_restart() -> None:
    job = queued_job(status={"phase": "Running", "restarts": 1})
    pods = [running(p) for p in plan_reconcile(queued_job(), [admitted()], NOW).create]
    plan = plan_reconcile(job, [evicted(), *pods], NOW)
    assert known_names(plan.delete_pods, pods) == [
        "digits-rdzv",
        "digits-worker-0-a0",
        "digits-worker-1-a0",
    ]
    assert plan.workload_status_patch is None  # the quota is given back once they are gone
    phase, reason, message = phase_of(plan)
    assert (phase, reason) == ("Queued", "EvictedByKueue") and "Preempted" in message
    assert (plan.status_patch or {}).get("restarts") is None  # unchanged


def test_once_its_workers_are_gone_an_evicted_job_gives_the_quota_back() -> None:
    job = queued_job(status={"phase": "Queued", "restarts": 1})
    plan = plan_reconcile(job, [evicted()], NOW)
    patch = plan.workload_status_patch
    assert patch is not None and patch["status"]["admission"] is None
    requeued = {c["type"]: c for c in patch["status"]["conditions"]}["Requeued"]
    assert requeued["status"] == "True"


def test_a_job_that_ends_marks_its_workload_finished_once() -> None:
    job = queued_job(status={"phase": "Running"})
    pods = [running(p) for p in plan_reconcile(queued_job(), [admitted()], NOW).create]
    done = [finished(p, "Succeeded") if "worker" in p["metadata"]["name"] else p for p in pods]
    plan = plan_reconcile(job, [admitted(), *done], NOW)
    assert (plan.status_patch or {}).get("phase") == "Succeeded"
    patch = plan.workload_status_patch
    assert patch is not None
    marked = {c["type"]: c for c in patch["status"]["conditions"]}["Finished"]
    assert (marked["status"], marked["reason"]) == ("True", "Succeeded")
    ended = copy.deepcopy(admitted())
    ended["status"]["conditions"] = patch["status"]["conditions"]
    again = plan_reconcile({**job, "status": {"phase": "Succeeded"}}, [ended], NOW)
    assert again.workload_status_patch is None


def test_a_queued_job_its_user_suspends_is_suspended() -> None:
    job = queued_job({"runPolicy": {"suspend": True}})
    plan = plan_reconcile(job, [admitted()], NOW)
    assert phase_of(plan)[0] == "Suspended" and plan.create == []


def test_a_job_without_the_label_never_gets_a_workload() -> None:
    plan = plan_reconcile(make_job(), [], NOW)
    assert plan.workload is None and plan.workload_status_patch is None and plan.create
