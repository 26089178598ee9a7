"""spec.scheduling.gang on a real API server: the job's PodGroup, or a clear failure without one.

No gang scheduler runs here (kwok's nodes are bound by the default scheduler); what is checked
is what Ringleader owns: the PodGroup a scheduler would read, the pods joining it, and the job's
status when the cluster lacks the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import OperatorProcess
from tests.integration.test_operator import (
    live_worker_slots,
    make_job,
    wait_for_phase,
    worker_pods,
)
from tests.kube import Kube, wait_until

CRD = Path(__file__).parent / "manifests" / "coscheduling-podgroup-crd.yaml"


@pytest.fixture
def coscheduling_api(kube: Kube, namespace: str, operator: OperatorProcess) -> Iterator[None]:
    """The coscheduling PodGroup API, served for this test only."""
    kube.apply(yaml.safe_load(CRD.read_text()), namespace)
    try:
        kube.run("wait", "--for=condition=Established", "crd/podgroups.scheduling.x-k8s.io")
        wait_until(
            lambda: "podgroups" in kube.run("api-resources", "--api-group=scheduling.x-k8s.io"),
            what="PodGroups in discovery",
        )
        yield
    finally:
        # With the operator running and watching PodGroups (listwatch.py: kopf 1.45 would
        # exit if its watch were answered 404 before it noticed the CRD's deletion).
        kube.run("delete", "crd", "podgroups.scheduling.x-k8s.io", "--wait=true", check=False)


def pod_group(kube: Kube, namespace: str) -> dict[str, Any] | None:
    found = kube.run(
        "get", "podgroups.scheduling.x-k8s.io", "-n", namespace, "-o", "yaml", check=False
    )
    items = (yaml.safe_load(found) or {}).get("items") or []
    return items[0] if items else None


def test_a_gang_job_gets_its_pod_group_first_and_keeps_it_sized_to_the_gang(
    kube: Kube, operator: OperatorProcess, namespace: str, coscheduling_api: None
) -> None:
    kube.apply(make_job(replicas=2, scheduling={"gang": True}), namespace)
    wait_for_phase(kube, namespace, "Running")
    group = pod_group(kube, namespace)
    assert group is not None
    assert (group["metadata"]["name"], group["spec"]["minMember"]) == ("train", 2)
    assert group["spec"]["minResources"] == {"nvidia.com/gpu": "4"}  # 2 GPUs a worker
    assert group["metadata"]["ownerReferences"][0]["name"] == "train"
    labels = [
        p["metadata"]["labels"].get("scheduling.x-k8s.io/pod-group")
        for p in worker_pods(kube, namespace)
    ]
    assert labels == ["train", "train"]
    # A fixed-size job scaled restarts its gang at the new size: the group follows first.
    kube.run("scale", "dtj/train", "-n", namespace, "--replicas=3")
    wait_until(lambda: len(live_worker_slots(kube, namespace)) == 3, what="the gang of 3 created")
    group = pod_group(kube, namespace)
    assert group is not None and group["spec"]["minMember"] == 3
    assert group["spec"]["minResources"] == {"nvidia.com/gpu": "6"}


def test_a_gang_job_for_a_scheduler_the_cluster_lacks_fails_at_once_and_says_what_is_missing(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    scheduling = {"gang": True, "schedulerName": "volcano", "queueName": "research"}
    kube.apply(make_job(scheduling=scheduling), namespace)
    status = wait_for_phase(kube, namespace, "Failed")
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "GangSchedulingUnavailable"
    assert "podgroups.scheduling.volcano.sh/v1beta1" in failed["message"]
    assert worker_pods(kube, namespace) == []  # no worker made that no scheduler would bind


def test_the_operator_outlives_the_pod_group_api_going_and_coming_back(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    crd = yaml.safe_load(CRD.read_text())
    for round_ in range(3):
        kube.apply(crd, namespace)
        kube.run("wait", "--for=condition=Established", "crd/podgroups.scheduling.x-k8s.io")
        name = f"gang-{round_}"
        kube.apply(make_job(name=name, scheduling={"gang": True}), namespace)
        wait_for_phase(kube, namespace, "Running", name=name)
        # Deleted while the operator watches it: the watch is answered 404 from now on.
        kube.run("delete", "crd", "podgroups.scheduling.x-k8s.io", "--wait=true")
        kube.apply(make_job(name=f"plain-{round_}"), namespace)
        wait_for_phase(kube, namespace, "Running", name=f"plain-{round_}")
        assert operator.process is not None and operator.process.poll() is None, operator.log_tail()
