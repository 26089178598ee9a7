"""A training job preempted by Kueue resumes from its checkpoint: the real Kueue, the operator,
and the built-in trainer image on real nodes. The preempted job stops at a step
boundary with a checkpoint, waits Queued, and once the quota is back trains on from where it
stopped — at most one checkpoint interval redone — to Succeeded, with no restart counted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ringleader import kueueworkload as kw
from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    pod_log,
    status_when,
    wait_finished,
)
from tests.harness import LocalNodes
from tests.kube import Kube, worker_name
from tests.schedulers.test_kueue import KUEUE_API
from tests.schedulers.test_kueue_workload import priority_classes

__all__ = ["priority_classes"]  # a fixture of the Workload protocol's test, used here too

Obj = dict[str, Any]
CHECKPOINT_EVERY = int(DIGITS_ARGS[DIGITS_ARGS.index("--checkpoint-every") + 1])
LOCAL_POOL = {"ringleader.dev/node-pool": "local"}


@pytest.fixture
def local_queue(kube: Kube, kueue: str, namespace: str) -> Iterator[str]:
    """A flavor of the local nodes and CPU quota for one two-worker job (a CPU each); a higher
    priority preempts a lower one. Yields the LocalQueue's name."""
    name = f"{namespace}-local"
    flavor = {
        "apiVersion": KUEUE_API,
        "kind": "ResourceFlavor",
        "metadata": {"name": name},
        "spec": {"nodeLabels": LOCAL_POOL},
    }
    cluster_queue = {
        "apiVersion": KUEUE_API,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu"],
                    "flavors": [
                        {"name": name, "resources": [{"name": "cpu", "nominalQuota": "2"}]}
                    ],
                }
            ],
        },
    }
    queue = {
        "apiVersion": KUEUE_API,
        "kind": "LocalQueue",
        "metadata": {"name": "team"},
        "spec": {"clusterQueue": name},
    }
    kube.apply([flavor, cluster_queue, queue], namespace)
    try:
        yield "team"
    finally:
        kube.run("delete", "clusterqueue,resourceflavor", name, "--wait=false", check=False)


def queued_digits(name: str, image: str, queue: str, priority_class: str, epochs: int) -> Obj:
    """The e2e digits job, placed by its flavor rather than by its own node selector."""
    job = digits_job(name, image)
    job["metadata"]["labels"] = {kw.QUEUE_LABEL: queue}
    job["spec"]["scheduling"] = {"priorityClassName": priority_class}
    pod_spec = job["spec"]["template"]["spec"]
    del pod_spec["nodeSelector"]
    args = pod_spec["containers"][0]["args"]
    args[args.index("--epochs") + 1] = str(epochs)
    return job


def step_of(status: Obj) -> int:
    return int((status.get("progress") or {}).get("step") or 0)


def resumed_at(kube: Kube, namespace: str, pod: str) -> list[int]:
    """The steps the trainer of the pod's newest incarnation resumed from (`kubectl logs`)."""
    log = pod_log(kube, namespace, pod)
    return [int(s) for s in re.findall(r"ringleader: resumed from \S+ at step (\d+)", log)]


@pytest.mark.usefixtures("crd", "operator")
def test_a_job_preempted_by_kueue_resumes_from_its_checkpoint_and_succeeds(
    kube: Kube,
    local_nodes: LocalNodes,
    namespace: str,
    local_queue: str,
    priority_classes: dict[str, str],
) -> None:
    image = local_nodes.image("trainer")
    low = queued_digits("low", image, local_queue, priority_classes["low"], epochs=40)
    kube.apply(low, namespace)
    status_when(
        kube, namespace, "low",
        lambda s: s.get("phase") == "Running" and (s.get("checkpoint") or {}).get("step", 0) >= 20,
        timeout=240, what="low training, a checkpoint written",
    )  # fmt: skip
    urgent_job = queued_digits("urgent", image, local_queue, priority_classes["high"], epochs=5)
    kube.apply(urgent_job, namespace)
    preempted = status_when(
        kube, namespace, "low", lambda s: s.get("phase") == "Queued",
        timeout=120, what="low preempted",
    )  # fmt: skip
    stopped_at = step_of(preempted)
    assert stopped_at > 0, preempted
    urgent = wait_finished(kube, namespace, "urgent", timeout=300)
    assert urgent["phase"] == "Succeeded", urgent
    # Its Workload finished, the quota comes back to low, which trains on to the end.
    final = wait_finished(kube, namespace, "low", timeout=400)
    assert final["phase"] == "Succeeded", final
    assert final.get("restarts", 0) == 0 and "lastFailure" not in final, final
    last = worker_name(kube, namespace, "low", 0)  # worker 0's pod since it was admitted again
    resumed = resumed_at(kube, namespace, last)
    assert resumed, "low never resumed from a checkpoint"
    assert resumed[-1] >= stopped_at - CHECKPOINT_EVERY, (resumed, stopped_at)
