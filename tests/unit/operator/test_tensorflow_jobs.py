"""spec.framework tensorflow: TF_CONFIG, no rendezvous, the gang restarted whole, the refusals."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from ringleader import admission, builders
from ringleader import constants as c
from ringleader.reconcile import plan_reconcile
from tests.unit.operator.jobs import make_job, parse
from tests.unit.operator.test_admission import DryRuns
from tests.unit.operator.test_reconcile_plan import NOW, names
from tests.unit.operator.test_reconcile_recovery import OOM, USER, fail, preempt, settled
from tests.unit.operator.test_worker_builders import env_map
from tests.unit.operator.workers import is_called

TF: dict[str, Any] = {"framework": "tensorflow"}


def test_each_worker_gets_tf_config_with_every_workers_stable_name_and_its_own_index() -> None:
    job = parse(make_job({**TF, "replicas": 3}))
    pods = builders.build_worker_pods(job, 0)
    configs = [json.loads(env_map(pod)["TF_CONFIG"]) for pod in pods]
    workers = [f"digits-worker-{i}.digits-workers.team-a.svc:2222" for i in range(3)]
    for index, config in enumerate(configs):
        assert config == {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
            "environment": "cloud",
        }


def test_a_pytorch_worker_gets_no_tf_config() -> None:
    pod = builders.build_worker_pod(parse(make_job()), 0, 0)
    assert "TF_CONFIG" not in env_map(pod)


def test_a_tensorflow_job_gets_its_workers_and_their_service_but_no_rendezvous() -> None:
    plan = plan_reconcile(make_job(TF), [], NOW)
    assert names(plan.create) == [
        "Pod/digits-worker-0-a0",
        "Pod/digits-worker-1-a0",
        "Service/digits-workers",
    ]


@pytest.mark.parametrize("terminated", [OOM, USER], ids=["oom", "user-error"])
def test_a_failed_tensorflow_worker_restarts_the_whole_gang_under_the_next_attempt(
    terminated: dict[str, Any],
) -> None:
    job, children = settled(TF)
    plan = plan_reconcile(job, fail(children, "digits-worker-1-a0", terminated), NOW)
    assert plan.status_patch is not None
    assert (plan.status_patch["restartAttempt"], plan.status_patch["restarts"]) == (1, 1)
    assert plan.status_patch["lastFailure"]["action"] == "RestartGang"
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]


def test_a_preempted_tensorflow_worker_restarts_the_gang_without_using_up_a_restart() -> None:
    job, children = settled({**TF, "failurePolicy": {"maxRestarts": 0}})
    plan = plan_reconcile(job, preempt(children, "digits-worker-0-a0"), NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["restartAttempt"] == 1
    assert plan.status_patch.get("restarts", 0) == 0
    assert plan.status_patch["lastFailure"]["action"] == "RestartGang"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"elastic": {"minReplicas": 1, "maxReplicas": 3}}, "spec.elastic"),
        ({"nprocPerNode": 2}, "spec.nprocPerNode"),
        ({"networking": {"preflight": {}}}, "spec.networking.preflight"),
        (
            {"failurePolicy": {"rules": [{"classes": ["Preempted"], "action": "RestartWorker"}]}},
            "spec.failurePolicy.rules",
        ),
    ],
    ids=["elastic", "nproc", "preflight", "restart-worker-rule"],
)
def test_what_a_tensorflow_group_cannot_do_is_refused_with_the_field_named(
    spec: dict[str, Any], field: str
) -> None:
    parse(make_job(spec))  # allowed for PyTorch
    with pytest.raises(ValidationError) as refused:
        parse(make_job({**TF, **spec}))
    assert field in str(refused.value)


@pytest.mark.parametrize("nproc", ["auto", 1])
def test_a_tensorflow_job_runs_one_process_per_pod(nproc: Any) -> None:
    assert parse(make_job({**TF, "nprocPerNode": nproc})).spec.framework == "tensorflow"


def deleted(children: list[dict[str, Any]], slot: str) -> list[dict[str, Any]]:
    """The children with one worker (by slot) being deleted by a user: no DisruptionTarget."""
    out = copy.deepcopy(children)
    for child in out:
        if is_called(child, slot):
            child["metadata"]["deletionTimestamp"] = "2026-05-06T07:08:00Z"
    return out


def test_a_deleted_tensorflow_worker_restarts_the_gang_at_once_without_using_up_a_restart() -> None:
    job, children = settled(TF)
    plan = plan_reconcile(job, deleted(children, "digits-worker-1-a0"), NOW)
    assert plan.status_patch is not None
    assert plan.status_patch["restartAttempt"] == 1
    assert plan.status_patch.get("restarts", 0) == 0
    last = plan.status_patch["lastFailure"]
    assert (last["action"], last["reason"]) == ("RestartGang", "PodDeleted")
    assert names(plan.create) == ["Pod/digits-worker-0-a1", "Pod/digits-worker-1-a1"]


def test_a_deleted_pytorch_worker_is_only_replaced_in_its_slot() -> None:
    job, children = settled()
    plan = plan_reconcile(job, deleted(children, "digits-worker-1-a0"), NOW)
    assert "restartAttempt" not in (plan.status_patch or {})
    assert "lastFailure" not in (plan.status_patch or {})


def test_a_surplus_copy_of_a_tensorflow_worker_leaving_is_no_loss() -> None:
    job, children = settled(TF)
    worker = next(c for c in children if is_called(c, "digits-worker-1-a0"))
    copy_of = copy.deepcopy(worker)
    copy_of["metadata"]["name"] += "-copy"
    copy_of["metadata"]["uid"] = "uid-copy"
    copy_of["metadata"]["deletionTimestamp"] = "2026-05-06T07:08:00Z"
    plan = plan_reconcile(job, [*children, copy_of], NOW)
    assert "restartAttempt" not in (plan.status_patch or {})


def test_the_webhook_dry_runs_a_tensorflow_jobs_worker_and_nothing_else() -> None:
    dry_runs = DryRuns()
    assert admission.review(make_job(TF), None, dry_runs) is None
    assert [p["metadata"]["labels"][c.LABEL_ROLE] for p in dry_runs.pods] == [c.ROLE_WORKER]
    assert "TF_CONFIG" in env_map(dry_runs.pods[0])


def test_the_webhook_refuses_what_a_tensorflow_group_cannot_do_before_any_dry_run() -> None:
    dry_runs = DryRuns()
    refusal = admission.review(make_job({**TF, "nprocPerNode": 4}), None, dry_runs)
    assert refusal is not None and "spec.nprocPerNode" in refusal
    assert dry_runs.pods == []
