"""An elastic job resized with `kubectl scale` while it trains on real nodes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from ringleader_client.progressfiles import PROGRESS_FILE, read_json
from tests.e2e.conftest import create_restricted_namespace
from tests.e2e.test_recovery_on_local_nodes import volume_of
from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    status_when,
    wait_finished,
)
from tests.harness import InstalledOperator, LocalNodes, node_ready
from tests.kube import Kube, wait_until

EPOCHS = 15
TRAIN_SAMPLES = 1437  # digits: 1797 samples, 20 % held out
TRACE_DIR = "/checkpoints/trace"
CHECKPOINT_EVERY = int(DIGITS_ARGS[DIGITS_ARGS.index("--checkpoint-every") + 1])
# Real nodes have the machine's CPUs (2 here). Four workers fit on two nodes beside the
# rendezvous pod (0.1 CPU); with WORKER_CPU two fill a node, so a lost node is lost room.
WORKER_CPU = "900m"


def job(name: str, image: str, elastic: bool, step_seconds: str, cpu: str = "500m") -> Any:
    out = digits_job(name, image, replicas=2)
    trainer = out["spec"]["template"]["spec"]["containers"][0]
    args = [*DIGITS_ARGS, "--epochs", str(EPOCHS), "--min-step-seconds", step_seconds]
    trainer["args"] = [*args, "--trace-dir", TRACE_DIR]
    trainer["resources"] = {"requests": {"cpu": cpu}}
    if elastic:
        out["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 4}
    return out


@pytest.fixture(scope="module")
def reference_accuracy(kube: Kube, operator: InstalledOperator, trainer_image: str) -> float:
    """The final accuracy of the same job at a fixed size (the same global batch)."""
    namespace = "fixed-size-run"
    create_restricted_namespace(kube, namespace)
    try:
        kube.apply(job("fixed", trainer_image, elastic=False, step_seconds="0"), namespace)
        assert wait_finished(kube, namespace, "fixed", timeout=300)["phase"] == "Succeeded"
        return final_accuracy(kube, namespace, "fixed")
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def final_accuracy(kube: Kube, namespace: str, name: str) -> float:
    progress = read_json(volume_of(kube, namespace, name) / PROGRESS_FILE)
    assert progress is not None and progress["state"] == "Finished", progress
    return float(progress["eval"]["accuracy"])


def read_traces(trace_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in trace_dir.glob("*.jsonl") for line in path.open()]


def training_with(kube: Kube, namespace: str, size: int, timeout: float = 180) -> None:
    status_when(
        kube,
        namespace,
        "elastic",
        lambda s: (s.get("progress") or {}).get("worldSize") == size,
        timeout=timeout,
        what=f"training with {size} processes",
    )


def assert_every_sample_once_per_epoch(traces: list[dict[str, Any]]) -> None:
    for epoch in range(EPOCHS):
        seen = Counter(s for line in traces if line["epoch"] == epoch for s in line["samples"])
        assert sorted(seen) == list(range(TRAIN_SAMPLES)) and set(seen.values()) == {1}, epoch


def test_an_elastic_job_scaled_2_4_2_3_trains_every_sample_once_to_the_same_accuracy(
    kube: Kube, reference_accuracy: float, trainer_image: str, namespace: str
) -> None:
    kube.apply(job("elastic", trainer_image, elastic=True, step_seconds="0.15"), namespace)
    training_with(kube, namespace, 2)
    for size in (4, 2, 3):
        kube.run("scale", "dtj/elastic", "-n", namespace, f"--replicas={size}")
        training_with(kube, namespace, size)
    status = wait_finished(kube, namespace, "elastic", timeout=420)
    assert status["phase"] == "Succeeded", status
    assert status["restartAttempt"] == 0 and status.get("restarts", 0) == 0  # resized in place

    traces = read_traces(volume_of(kube, namespace, "elastic") / Path(TRACE_DIR).name)
    ranks_per_step: defaultdict[int, Counter[int]] = defaultdict(Counter)
    for line in traces:
        ranks_per_step[line["step"]][line["rank"]] += 1
    # Every resize happened at a step boundary after a checkpoint: no step was trained twice.
    twice = sorted(step for step, ranks in ranks_per_step.items() if set(ranks.values()) != {1})
    assert not twice, [
        (t["step"], t["rank"], t["world_size"]) for t in traces if t["step"] in twice
    ]
    assert {line["world_size"] for line in traces} >= {2, 3, 4}
    assert_every_sample_once_per_epoch(traces)

    accuracy = final_accuracy(kube, namespace, "elastic")
    assert abs(accuracy - reference_accuracy) <= 0.005, (accuracy, reference_accuracy)
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert reasons.split().count("Resized") >= 3


def final_timeline(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace lines of the steps that count: a step trained again after a lost worker (from
    the newest checkpoint) replaces the earlier, lost try. One try's ranks agree on a step within
    milliseconds; a retry comes seconds later."""
    latest: dict[int, float] = {}
    for line in traces:
        latest[line["step"]] = max(latest.get(line["step"], 0.0), line["time"])
    return [line for line in traces if line["time"] > latest[line["step"]] - 1.0]


def pods_on(kube: Kube, namespace: str, node: str) -> list[str]:
    pods = kube.get("pods", namespace=namespace)["items"]
    return sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node)


def unschedulable(kube: Kube, namespace: str) -> list[str]:
    """The pods the scheduler found no room for."""
    return [
        p["metadata"]["name"]
        for p in kube.get("pods", namespace=namespace)["items"]
        for c in p["status"].get("conditions") or []
        if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
    ]


def test_an_elastic_job_shrinks_when_a_node_is_lost_and_grows_when_it_returns(
    kube: Kube, reference_accuracy: float, trainer_image: str, namespace: str,
    local_nodes: LocalNodes,
) -> None:  # fmt: skip
    # Paced so the job outlasts the lost node and its return.
    elastic = job("elastic", trainer_image, elastic=True, step_seconds="0.4", cpu=WORKER_CPU)
    kube.apply(elastic, namespace)
    training_with(kube, namespace, 2)
    kube.run("scale", "dtj/elastic", "-n", namespace, "--replicas=4")
    training_with(kube, namespace, 4)  # two workers on each local node

    names = local_nodes.names
    lost = next(n for n in names if "elastic-rdzv" not in pods_on(kube, namespace, n))
    assert len(pods_on(kube, namespace, lost)) == 2
    # The machine vanishes (its workers die without a word) and its Node is deleted.
    local_nodes.lose(lost, delete=True)
    training_with(kube, namespace, 2, timeout=60)
    # Three wanted: the third waits for room, which comes back with the node.
    kube.run("scale", "dtj/elastic", "-n", namespace, "--replicas=3")
    wait_until(lambda: unschedulable(kube, namespace), what="a worker waiting for room")
    progress = kube.get("dtj", "elastic", namespace=namespace)["status"].get("progress") or {}
    assert progress["worldSize"] == 2
    local_nodes.restore(lost)
    training_with(kube, namespace, 3, timeout=240)
    status = wait_finished(kube, namespace, "elastic", timeout=420)
    assert status["phase"] == "Succeeded", status
    assert status["restartAttempt"] == 0  # never the whole gang: the survivors trained on

    traces = read_traces(volume_of(kube, namespace, "elastic") / Path(TRACE_DIR).name)
    assert {line["world_size"] for line in traces} >= {2, 3, 4}
    counted = final_timeline(traces)
    # What the lost node cost: at most the steps since the newest checkpoint, by 4 ranks.
    assert len(traces) - len(counted) <= 4 * CHECKPOINT_EVERY
    assert_every_sample_once_per_epoch(counted)
    accuracy = final_accuracy(kube, namespace, "elastic")
    assert abs(accuracy - reference_accuracy) <= 0.005, (accuracy, reference_accuracy)
    assert node_ready(kube, lost)
