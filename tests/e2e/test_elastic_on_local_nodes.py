"""An elastic job resized with `kubectl scale` while it trains on local nodes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ringleader_trainer.progress import PROGRESS_FILE, read_json
from tests.e2e.test_recovery_on_local_nodes import volume_of
from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    status_when,
    wait_finished,
)
from tests.harness import LocalNodes, OperatorProcess
from tests.kube import Kube

EPOCHS = 15
TRAIN_SAMPLES = 1437  # digits: 1797 samples, 20 % held out
TRACE_DIR = "/checkpoints/trace"


def job(name: str, elastic: bool, step_seconds: str) -> dict[str, Any]:
    out = digits_job(name, replicas=2)
    args = [*DIGITS_ARGS, "--epochs", str(EPOCHS), "--min-step-seconds", step_seconds]
    out["spec"]["template"]["spec"]["containers"][0]["args"] = [*args, "--trace-dir", TRACE_DIR]
    if elastic:
        out["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 4}
    return out


def final_accuracy(kube: Kube, namespace: str, name: str) -> float:
    progress = read_json(volume_of(kube, namespace, name) / PROGRESS_FILE)
    assert progress is not None and progress["state"] == "FINISHED", progress
    return float(progress["eval"]["accuracy"])


def read_traces(trace_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in trace_dir.glob("*.jsonl") for line in path.open()]


def training_with(kube: Kube, namespace: str, size: int) -> None:
    status_when(
        kube,
        namespace,
        "elastic",
        lambda s: (s.get("progress") or {}).get("worldSize") == size,
        timeout=180,
        what=f"training with {size} processes",
    )


def test_an_elastic_job_scaled_2_4_2_3_trains_every_sample_once_to_the_same_accuracy(
    kube: Kube, operator: OperatorProcess, local_nodes: LocalNodes, namespace: str
) -> None:
    kube.apply(job("fixed", elastic=False, step_seconds="0"), namespace)
    assert wait_finished(kube, namespace, "fixed", timeout=300)["phase"] == "Succeeded"
    reference = final_accuracy(kube, namespace, "fixed")

    kube.apply(job("elastic", elastic=True, step_seconds="0.15"), namespace)
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
    for epoch in range(EPOCHS):
        seen = Counter(s for line in traces if line["epoch"] == epoch for s in line["samples"])
        assert sorted(seen) == list(range(TRAIN_SAMPLES)) and set(seen.values()) == {1}, epoch

    accuracy = final_accuracy(kube, namespace, "elastic")
    assert abs(accuracy - reference) <= 0.005, (accuracy, reference)
    reasons = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert reasons.split().count("Resized") >= 3
