"""Benchmark: how long an elastic job takes to train at its new size, beside a gang restart.

Run (root: real nodes, the operator installed by its chart, as bench.recovery):
    .venv/bin/python -m bench.elastic [--resizes 10]

An elastic digits job (spec.elastic 1..3) is scaled back and forth between 2 and 3 workers with
`kubectl scale`, `--resizes` times each way:

    grow     from the new worker Running to the first step trained by 3 processes
    shrink   from `kubectl scale` (the highest worker leaves after the group checkpointed) to
             the first step trained by 2 processes

and then a fixed-size job of the same model is scaled the same way, which restarts its whole
gang (restartAttempt + 1): from `kubectl scale` to the first step at the new size. Times are
read from the trainers' per-step traces. Prints p50/p95 side by side; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.recovery import (
    NAMESPACE,
    RECOVERY_TIMEOUT,
    Bench,
    bench_cluster,
    build_job,
    report,
    start_bench_cluster,
)
from tests.kube import worker_selector
from tools.localcluster.cluster import LocalCluster

ELASTIC = {"minReplicas": 1, "maxReplicas": 3}


def resizable_job(name: str, image: str, elastic: bool) -> dict[str, Any]:
    """The recovery benchmark's traced digits job, elastic or of a fixed size."""
    job = build_job(name, "kill-worker", image)  # no failure rules
    if elastic:
        job["spec"]["elastic"] = ELASTIC
    return job


def first_step_at(bench: Bench, size: int, after: float) -> float:
    """Wall time of the first step after `after` trained by `size` processes."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        found = [
            line["time"]
            for path in bench.trace_dir().glob("trace-*.jsonl")
            for line in map(json.loads, path.read_text().splitlines())
            if line["world_size"] == size and line["time"] > after
        ]
        if found:
            return float(min(found))
        time.sleep(0.2)
    raise TimeoutError(f"{bench.name}: no step at size {size} within {RECOVERY_TIMEOUT:.0f}s")


def running_since(bench: Bench, index: int) -> float:
    """The moment this bench first sees a pod of worker `index` Running, not being deleted (by
    its labels: each incarnation has a name of its own; an elastic job grows in attempt 0)."""
    selector = worker_selector(bench.name, index, attempt=0)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        for item in bench.kubectl_json("get", "pods", "-l", selector)["items"]:
            leaving = item["metadata"].get("deletionTimestamp")
            if not leaving and item["status"].get("phase") == "Running":
                return time.time()
        time.sleep(0.1)
    raise TimeoutError(f"{bench.name} worker {index} not Running within {RECOVERY_TIMEOUT:.0f}s")


def scale(bench: Bench, replicas: int) -> float:
    moment = time.time()
    bench.cluster.kubectl("scale", f"dtj/{bench.name}", "-n", NAMESPACE, f"--replicas={replicas}")
    return moment


def measure(
    cluster: LocalCluster, image: str, name: str, elastic: bool, resizes: int
) -> dict[str, list[float]]:
    """Scale one job 2 → 3 → 2 … `resizes` times each way; return the times by direction."""
    bench = Bench(cluster, name)
    job = resizable_job(name, image, elastic)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    first_step_at(bench, 2, 0.0)
    times: dict[str, list[float]] = {"grow": [], "shrink": []}
    for i in range(resizes):
        for direction, size in (("grow", 3), ("shrink", 2)):
            moment = scale(bench, size)
            if elastic and direction == "grow":
                moment = running_since(bench, 2)
            took = first_step_at(bench, size, moment) - moment
            times[direction].append(took)
            print(f"  {name} {direction} #{i + 1}: {took:.1f} s", flush=True)
            bench.wait_checkpoint_after(moment + took)
    cluster.kubectl("delete", "dtj", name, "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    return times


def main() -> None:
    """Bring up the bench cluster with two real nodes and the operator; measure both jobs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resizes", type=int, default=10, help="resizes each way per job")
    args = parser.parse_args()
    cluster = bench_cluster()
    cluster.destroy()
    results: dict[str, list[float]] = {}
    runs: list[tuple[str, bool]] = [("elastic", True), ("fixed", False)]
    try:
        image = start_bench_cluster(cluster)
        for name, elastic in runs:
            print(f"{name}:", flush=True)
            measured = measure(cluster, image, name, elastic, args.resizes)
            for direction, times in measured.items():
                label = f"{direction} ({'in place' if elastic else 'gang restart'})"
                results[label] = times
    finally:
        cluster.destroy()
    report(results, "time to the first step at the new size (s)")


if __name__ == "__main__":
    main()
