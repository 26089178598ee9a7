"""A slow node among the real nodes: the worker on it is named a straggler in status (with its node,
a condition and an event) within a few dozen steps; under ReplacePod its pod is replaced off
that node, the group goes on at full speed from its checkpoint and the job succeeds. Each group
measures its network first (a pre-flight), over the pod network between the two nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ringleader_client.progressfiles import PROGRESS_FILE
from tests.e2e.test_recovery_on_local_nodes import volume_of
from tests.e2e.test_training_through_the_operator import (
    DIGITS_ARGS,
    digits_job,
    job_status,
    status_when,
    wait_finished,
)
from tests.harness import InstalledOperator
from tests.kube import Kube, live_worker, wait_for_worker, wait_until

SLOW_NODES = "slow-nodes"  # under the checkpoint volume: the nodes the trainers slow down on
SLOW_SECONDS = 0.3  # added to each step's compute on a slow node (a digits step takes ~5 ms)
# Paced to 0.2 s a step before the slowdown, so that the step the test reads when it slows the
# node down (the trainer's report, up to a second old) is within a few steps of the real one.
PREFLIGHT_REASONS = {"NetworkAsExpected", "SlowLink", "SlowWorkerNetwork"}


def slow_node_job(image: str) -> dict[str, Any]:
    """The digits job, its two workers on two nodes, slowed down on the nodes the test lists,
    with stragglers replaced."""
    job = digits_job("slow", image)
    spec = job["spec"]["template"]["spec"]
    trainer = spec["containers"][0]
    trainer["args"] = [
        *DIGITS_ARGS,
        "--epochs",
        "8",
        "--min-step-seconds",
        "0.2",
        "--debug-slow-nodes-file",
        SLOW_NODES,
        "--debug-slow-seconds",
        str(SLOW_SECONDS),
    ]
    trainer["env"] = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    ]
    selector = {"ringleader.dev/job-name": "slow", "ringleader.dev/role": "worker"}
    spec["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": selector},
        }
    ]
    job["spec"]["failurePolicy"] = {"stragglerDetection": {"action": "ReplacePod"}}
    job["spec"]["networking"] = {"preflight": {"megabytes": 8}}
    return job


def step_of(status: dict[str, Any]) -> int:
    return int((status.get("progress") or {}).get("step") or 0)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


def event_reasons(kube: Kube, namespace: str) -> list[str]:
    return kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").split()


@pytest.mark.planted_straggler
def test_a_worker_on_a_slow_node_is_named_then_replaced_off_that_node(
    kube: Kube, operator: InstalledOperator, trainer_image: str, namespace: str
) -> None:
    kube.apply(slow_node_job(trainer_image), namespace)
    running = status_when(
        kube, namespace, "slow", lambda s: step_of(s) >= 5, timeout=180, what="step 5"
    )
    pod = wait_for_worker(kube, namespace, "slow", 1)
    worker_1, node, uid = pod["metadata"]["name"], pod["spec"]["nodeName"], pod["metadata"]["uid"]
    volume = volume_of(kube, namespace, "slow")
    (volume / SLOW_NODES).write_text(node + "\n")
    # The trainer's own newest report (status lags behind it by a poll and a write).
    slowed_at = int(json.loads((volume / PROGRESS_FILE).read_text())["step"])
    assert job_status(kube, namespace, "slow").get("stragglers") in (None, [])

    named = status_when(
        kube,
        namespace,
        "slow",
        lambda s: bool(s.get("stragglers")),
        timeout=180,
        what="a straggler",
    )["stragglers"][0]
    assert (named["pod"], named["node"], named["podUID"]) == (worker_1, node, uid)
    # The policy's 50 steps in a row, once the trainer's 20-step window shows the slowness.
    assert named["step"] - slowed_at <= 50 + 20 + 20, (slowed_at, named)
    assert named["slowerByPercent"] >= 100

    def replaced() -> dict[str, Any] | None:
        now = live_worker(kube, namespace, "slow", 1, other_than=uid)  # of its slot, not it
        return now if now is not None and now["spec"].get("nodeName") else None

    replacement = wait_until(replaced, timeout=180, what=f"{worker_1} replaced")
    assert replacement["spec"]["nodeName"] != node
    status = job_status(kube, namespace, "slow")
    assert status["avoidedNodes"] == [node]
    assert {"Straggler", "StragglerReplaced"} <= set(event_reasons(kube, namespace))

    done = wait_finished(kube, namespace, "slow", timeout=360)
    assert done["phase"] == "Succeeded", done
    assert done.get("stragglers") == []  # the group trained on at full speed
    assert condition(done, "Straggler")["status"] == "False"
    assert running["phase"] == "Running"
    # Each group measured its network before its first step: the first, and the one that
    # re-formed with the replacement (judged, not asserted: this machine's links are noisy).
    measured = done["preflight"]
    assert measured["worldSize"] == 2 and measured["busBandwidthGbps"] > 0
    assert measured["medianLinkGbps"] > 0
    assert condition(done, "PreflightPassed")["status"] == str(measured["passed"])
    told = [r for r in event_reasons(kube, namespace) if r in PREFLIGHT_REASONS]
    assert len(told) >= 2, told
