"""KubeApi.apply_pod_group while the PodGroup API goes away (a gang scheduler uninstalled): the
pass is retried, with no traceback, and the next one asks discovery again."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from ringleader.apiclient import MERGE_PATCH, ApiError, RestClient
from ringleader.kube import KubeApi, RetryableError

GROUP = {
    "apiVersion": "scheduling.x-k8s.io/v1alpha1",
    "kind": "PodGroup",
    "metadata": {"name": "digits", "namespace": "team-a"},
    "spec": {"minMember": 2},
}
TERMINATING = (
    'podgroups.scheduling.x-k8s.io "digits" is forbidden: create not allowed while custom '
    "resource definition is terminating"
)


def answer(status: int, message: str = "") -> ApiError:
    error = ApiError(status=status, reason="refused")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


class PodGroupsRest:
    """An API server whose PodGroup create and patch give the answers scripted (None: done)."""

    def __init__(self, create: ApiError | None, patch: ApiError | None = None) -> None:
        self.answers = {"POST": create, "PATCH": patch}
        self.calls: list[str] = []

    def request(self, method: str, path: str, *_: Any, **options: Any) -> dict[str, Any]:
        where = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/team-a/podgroups"
        verb = {"POST": "create", "PATCH": "patch"}[method]
        assert path == (where if verb == "create" else f"{where}/digits")
        if verb == "patch":
            assert options["content_type"] == MERGE_PATCH
        self.calls.append(verb)
        if (error := self.answers[method]) is not None:
            raise error
        return GROUP


def api_with(rest: PodGroupsRest) -> KubeApi:
    return KubeApi(cast(RestClient, rest))


@pytest.mark.parametrize(
    ("create", "patch"),
    [
        (answer(404), None),  # not served
        (answer(403, TERMINATING), None),  # its CRD being deleted
        (answer(409), answer(404)),  # there when created, gone when patched
    ],
    ids=["not-served", "crd-terminating", "gone-between"],
)
def test_a_pod_group_api_going_away_is_retried(create: ApiError, patch: ApiError) -> None:
    with pytest.raises(RetryableError, match="PodGroup digits: gone, or scheduling"):
        api_with(PodGroupsRest(create, patch)).apply_pod_group(GROUP)


def test_an_existing_pod_group_is_patched_and_another_refusal_is_raised() -> None:
    rest = PodGroupsRest(create=answer(409))
    api_with(rest).apply_pod_group(GROUP)
    assert rest.calls == ["create", "patch"]
    with pytest.raises(ApiError):
        api_with(PodGroupsRest(create=answer(403, "forbidden: RBAC"))).apply_pod_group(GROUP)
