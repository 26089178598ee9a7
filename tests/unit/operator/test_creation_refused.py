"""The API server refusing a child (a quota, PodSecurity, a webhook, a name held by another
object): said in status with the refusal quoted, Pending while it may pass, Failed when it
cannot; never a loop of tracebacks."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from ringleader.apiclient import ApiError, RestClient
from ringleader.controller import Controller
from ringleader.kube import CreationRefused, KubeApi, RetryableError, refusal_of
from ringleader.reconcile import Plan, plan_reconcile, plan_refusal
from tests.unit.operator.jobs import make_job
from tests.unit.operator.statusstore import StatusStore
from tests.unit.operator.test_reconcile_plan import NOW, settle

Obj = dict[str, Any]
QUOTA = 'pods "digits-worker-0-a0" is forbidden: exceeded quota: pods, requested: pods=1'
PSA = 'pods "digits-worker-0-a0" is forbidden: violates PodSecurity "restricted:latest"'


def api_error(status: int, message: str) -> ApiError:
    error = ApiError(status=status, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


@pytest.mark.parametrize(
    ("status", "message", "reason", "lasting"),
    [
        (403, QUOTA, "QuotaExceeded", False),
        (403, PSA, "Forbidden", True),
        (422, "spec.containers[0].image: Required value", "Invalid", True),
        (400, "admission webhook denied the request", "Invalid", True),
    ],
)
def test_a_refusal_is_lasting_unless_a_quota_may_free_up(
    status: int, message: str, reason: str, lasting: bool
) -> None:
    refused = refusal_of(api_error(status, message), "Pod", "digits-worker-0-a0")
    assert refused is not None
    assert (refused.reason, refused.message, refused.lasting) == (reason, message, lasting)


def test_errors_that_are_not_refusals_are_left_to_the_retry() -> None:
    assert refusal_of(api_error(500, "etcd is down"), "Pod", "p") is None
    assert refusal_of(api_error(404, "namespace not found"), "Pod", "p") is None


def refused(message: str = QUOTA, lasting: bool = False) -> CreationRefused:
    reason = "Forbidden" if lasting else "QuotaExceeded"
    return CreationRefused("Pod", "digits-worker-0-a0", reason, message, lasting)


def applied(job: Obj, plan: Plan) -> Obj:
    status = {**(job.get("status") or {}), **(plan.status_patch or {})}
    return {**job, "status": {k: v for k, v in status.items() if v is not None}}


def test_a_refusal_is_quoted_in_status_and_announced_once() -> None:
    job = make_job()
    plan = plan_refusal(job, refused(), NOW)
    assert plan.status_patch is not None
    said = plan.status_patch["refusal"]
    assert said["message"].startswith("creating Pod digits-worker-0-a0 was refused")
    assert QUOTA in said["message"] and said["lasting"] is False
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "CreationRefused")]
    assert plan_refusal(applied(job, plan), refused(), NOW) == Plan()


def test_a_job_refused_for_good_fails_with_the_refusal_quoted() -> None:
    job = applied(make_job(), plan_refusal(make_job(), refused(PSA, lasting=True), NOW))
    plan = plan_reconcile(job, [], NOW)
    assert plan.status_patch is not None and plan.status_patch["phase"] == "Failed"
    failed = {c["type"]: c for c in plan.status_patch["conditions"]}["Failed"]
    assert failed["reason"] == "CreationRefused" and PSA in failed["message"]
    assert plan.create == []
    assert plan_reconcile(applied(job, plan), [], NOW).status_patch is None  # once


def test_a_job_over_its_quota_waits_pending_saying_why_and_goes_on_once_all_exist() -> None:
    # The pass that was refused had said Starting, counting the workers it was about to make.
    starting = plan_reconcile(make_job(), [], NOW)
    job = applied(make_job(), starting)
    assert job["status"]["phase"] == "Starting"
    job = applied(job, plan_refusal(job, refused(), NOW))
    assert job["status"]["phase"] == "Pending"
    pending = job["status"]["conditions"][0]
    assert pending["reason"] == "CreationRefused" and QUOTA in pending["message"]
    plan = plan_reconcile(job, [], NOW)
    assert plan.status_patch is None and plan.events == []  # said once, by the refusal
    assert plan.create  # tried again (the controller paces the retries)
    job, _ = settle(job, [])
    status = job["status"]
    assert status["phase"] == "Running" and not status.get("refusal")


class RefusingApi(StatusStore):
    """Every create is refused by a quota; status patches and events are kept."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def post_event(self, body: Obj, event_type: str, reason: str, message: str) -> None:
        self.events.append(reason)

    def create(self, obj: Obj) -> Obj | None:
        raise refused()

    def delete_pod(
        self, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> None:
        pass


def test_the_controller_records_a_refusal_and_retries_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RefusingApi()
    controller = Controller(cast(KubeApi, api), clock=lambda: NOW)
    controller.loop = asyncio.new_event_loop()  # where the retry timer goes; never run
    key = controller.cache.put_job(api.hold(make_job()))
    try:
        controller._reconcile(key)
        controller._reconcile(key)  # the same refusal: no second event
    finally:
        controller.loop.close()
    assert any("refusal" in patch for patch in api.patches)
    assert api.events.count("CreationRefused") == 1
    assert "Traceback" not in caplog.text and controller.failures[key] == 2


class NameTakenRest:
    """An API server that answers every create 409 and reads back what `holder` says."""

    def __init__(self, holder: Obj | None) -> None:
        self.holder = holder

    def request(self, method: str, path: str, *_: Any, **__: Any) -> Obj:
        if method == "POST":
            raise ApiError(status=409, reason="Conflict")
        assert (method, path) == ("GET", "/api/v1/namespaces/default/pods/digits-worker-0-a0")
        if self.holder is None:
            raise ApiError(status=404, reason="Not Found")
        return self.holder


def api_answering_409(holder: Obj | None) -> KubeApi:
    return KubeApi(cast(RestClient, NameTakenRest(holder)))


def owned_pod(owner_uid: str) -> Obj:
    return {
        "kind": "Pod",
        "metadata": {
            "name": "digits-worker-0-a0",
            "namespace": "default",
            "ownerReferences": [{"uid": owner_uid}],
        },
    }


def held_by(owner_uid: str) -> Obj:
    return {"metadata": {"name": "digits-worker-0-a0", "ownerReferences": [{"uid": owner_uid}]}}


def test_a_409_for_a_name_no_object_holds_is_tried_again() -> None:
    # A real API server answers 409 only while the name is taken, but the object may be gone
    # by the time it is read, and a proxy may answer 409 for nothing: no watch will report a
    # change, so the pass must be retried or the worker is never made.
    with pytest.raises(
        RetryableError, match=r"create Pod: 409 .*, but no Pod named digits-worker-0-a0 exists"
    ):
        api_answering_409(holder=None).create(owned_pod("job-uid"))


def test_a_409_for_the_jobs_own_child_is_fine_and_another_owner_is_a_name_clash() -> None:
    assert api_answering_409(held_by("job-uid")).create(owned_pod("job-uid")) is None
    with pytest.raises(CreationRefused) as clash:
        api_answering_409(held_by("someone-else")).create(owned_pod("job-uid"))
    assert (clash.value.reason, clash.value.lasting) == ("NameClash", True)
