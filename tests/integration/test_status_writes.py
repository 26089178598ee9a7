"""The status write a reconcile makes names the resourceVersion it decided from, and the real
API server holds it to that: a decision made from a stale read never overwrites a newer status."""

from __future__ import annotations

import pytest

from ringleader.kube import Conflict, KubeApi, connect
from tests.harness import OperatorProcess
from tests.integration.test_operator import job_status, make_job
from tests.kube import Kube


def test_a_status_patch_naming_an_older_resource_version_is_refused(
    kube: Kube, crd: str, namespace: str, operator: OperatorProcess
) -> None:
    operator.stop()  # the only writer of the job here: its writes would move the version too
    try:
        kube.apply(make_job(), namespace)
        read = kube.get("dtj", "train", namespace=namespace)
        api = KubeApi(connect(str(kube.kubeconfig)))
        version = read["metadata"]["resourceVersion"]

        written = api.patch_job_status(namespace, "train", {"restarts": 2}, version)
        assert written is not None and written["status"]["restarts"] == 2
        assert written["metadata"]["resourceVersion"] != version
        with pytest.raises(Conflict):  # decided from `read`, which is no longer the job
            api.patch_job_status(namespace, "train", {"restarts": 1}, version)
        assert job_status(kube, namespace)["restarts"] == 2
        # Without a version (the progress poller's writes), a patch is held to none.
        api.patch_job_status(namespace, "train", {"restarts": 3})
        assert job_status(kube, namespace)["restarts"] == 3
    finally:
        operator.start()
