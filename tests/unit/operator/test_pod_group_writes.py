"""KubeApi.apply_pod_group while the PodGroup API goes away (a gang scheduler uninstalled): the
pass is retried, with no traceback, and the next one asks discovery again."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

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


def answer(status: int, message: str = "") -> ApiException:
    error = ApiException(status=status, reason="refused")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


class CustomObjects:
    """A CustomObjectsApi whose create and patch give the answers scripted (None: done)."""

    def __init__(self, create: ApiException | None, patch: ApiException | None = None) -> None:
        self.answers = {"create": create, "patch": patch}
        self.calls: list[str] = []

    def _answer(self, verb: str) -> dict[str, Any]:
        self.calls.append(verb)
        if (error := self.answers[verb]) is not None:
            raise error
        return GROUP

    def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return self._answer("create")

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return self._answer("patch")


def api_with(custom: CustomObjects) -> KubeApi:
    api = KubeApi.__new__(KubeApi)
    api.custom = cast(Any, custom)
    return api


@pytest.mark.parametrize(
    ("create", "patch"),
    [
        (answer(404), None),  # not served
        (answer(403, TERMINATING), None),  # its CRD being deleted
        (answer(409), answer(404)),  # there when created, gone when patched
    ],
    ids=["not-served", "crd-terminating", "gone-between"],
)
def test_a_pod_group_api_going_away_is_retried(create: ApiException, patch: ApiException) -> None:
    with pytest.raises(RetryableError, match="PodGroup digits: gone, or scheduling"):
        api_with(CustomObjects(create, patch)).apply_pod_group(GROUP)


def test_an_existing_pod_group_is_patched_and_another_refusal_is_raised() -> None:
    custom = CustomObjects(create=answer(409))
    api_with(custom).apply_pod_group(GROUP)
    assert custom.calls == ["create", "patch"]
    with pytest.raises(ApiException):
        api_with(CustomObjects(create=answer(403, "forbidden: RBAC"))).apply_pod_group(GROUP)
