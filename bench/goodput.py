"""Benchmark: goodput under repeated failures, on real nodes.

Run (root: real nodes with the operator installed by its chart, as bench.recovery):
    .venv/bin/python -m bench.goodput [--minutes 20] [--every 300]
        [--kinds kill-worker,delete-pod,delete-node]

The same two-worker digits job as bench.recovery (a step every 0.05 s, a checkpoint every 20
steps) runs twice, one run after the other on the bench cluster: with no failure, then with a
failure injected into worker 1 (or its node) every --every seconds, the kinds in turn. Each run
lasts --minutes from its first step. From the trainers' per-step traces (bench.stepaccount):
goodput = time of the steps that were kept / wall time, and what the rest went to (steps trained
again after a restart, time with no step at all). Beside it: the steps the run reached against
the run with no failure, and what the operator's ringleader_job_goodput_ratio said for the same
job at the end, next to the traces' goodput counted as the operator counts it: from the job's
creation, the time to its first step (pods started, the group formed) lost. Asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from dataclasses import dataclass

from bench.recovery import NAMESPACE, Bench, bench_cluster, build_job, inject, start_bench_cluster
from bench.stepaccount import Account, Trace, account
from tools.localcluster import operatorchart
from tools.localcluster.cluster import LocalCluster

KINDS = ("kill-worker", "delete-pod", "delete-node")
METRICS_PATH = (
    f"/api/v1/namespaces/{operatorchart.NAMESPACE}/services/"
    f"{operatorchart.RELEASE}-metrics:8080/proxy/metrics"
)


@dataclass(frozen=True)
class Run:
    """One run: how its time went, and the operator's figure for it."""

    name: str
    failures: int
    time: Account
    from_creation: float  # the kept time over the wall time since the job was created
    operator_ratio: float | None


def rank0_traces(bench: Bench) -> list[Trace]:
    """(step, time) of rank 0 in each training process's trace, in the order completed."""
    traces: list[Trace] = []
    for path in sorted(bench.trace_dir().glob("trace-*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
        trace = [(int(x["step"]), float(x["time"])) for x in lines if x["rank"] == 0]
        if trace:
            traces.append(trace)
    return traces


def operator_ratio(cluster: LocalCluster, job: str) -> float | None:
    """ringleader_job_goodput_ratio for the job, from the chart-installed operator's /metrics."""
    text = cluster.kubectl("get", "--raw", METRICS_PATH)
    pattern = rf'^ringleader_job_goodput_ratio\{{[^}}]*job="{job}"[^}}]*\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


@dataclass(frozen=True)
class Plan:
    """How long each run trains, and the failures of the failing one."""

    minutes: float
    every: float
    kinds: tuple[str, ...]


def run_job(cluster: LocalCluster, image: str, name: str, plan: Plan, failing: bool) -> Run:
    """Train one job for the plan's minutes from its first step, with a failure every
    `plan.every` seconds (its kinds in turn) when failing; account for its time."""
    bench = Bench(cluster, name)
    # Both runs as the node-loss kind's job: its workers on different nodes, one off the store's.
    job = build_job(name, "delete-node", image)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    created = time.time()
    start = created + bench.first_step_after(created)
    end = start + plan.minutes * 60
    kinds = itertools.cycle(plan.kinds)
    failures = 0
    while failing and time.time() + plan.every < end:
        time.sleep(plan.every)
        kind = next(kinds)
        inject(bench, kind)
        failures += 1
        print(f"  {name}: {kind} at {time.time() - start:.0f} s", flush=True)
    time.sleep(max(end - time.time(), 0.0) + 2.0)  # the last steps reach the traces
    ratio = operator_ratio(cluster, name)
    spent = account(rank0_traces(bench), start, end)
    cluster.kubectl("delete", "dtj", name, "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    return Run(name, failures, spent, spent.kept / (end - created), ratio)


def report(runs: list[Run]) -> None:
    """One line per run, then the failure run against the undisturbed one."""
    print(f"\n  {'run':<12}{'failures':>9}{'wall s':>8}{'kept s':>8}{'redone s':>9}"
          f"{'no step s':>10}{'steps':>7}{'goodput':>9}{'created':>9}{'operator':>9}")  # fmt: skip
    for run in runs:
        t = run.time
        said = f"{run.operator_ratio:.3f}" if run.operator_ratio is not None else "-"
        print(f"  {run.name:<12}{run.failures:>9}{t.wall:>8.0f}{t.kept:>8.1f}{t.redone:>9.1f}"
              f"{t.no_step:>10.1f}{t.steps_kept:>7}{t.goodput:>9.3f}"
              f"{run.from_creation:>9.3f}{said:>9}")  # fmt: skip
    calm, failing = runs[0].time, runs[-1].time
    if calm.steps_kept:
        print(
            f"  steps reached with failures / without: {failing.steps_kept / calm.steps_kept:.3f}"
        )


def main() -> None:
    """Bring up the bench cluster; run the job without and with failures; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="each run's length")
    parser.add_argument("--every", type=float, default=300.0, help="seconds between failures")
    parser.add_argument("--kinds", default=",".join(KINDS), help="failures, in turn")
    args = parser.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"--kinds: unknown {sorted(unknown)}; known: {', '.join(KINDS)}")
    plan = Plan(args.minutes, args.every, kinds)
    cluster = bench_cluster()
    cluster.destroy()
    try:
        image = start_bench_cluster(cluster)
        calm = run_job(cluster, image, "calm", plan, failing=False)
        failing = run_job(cluster, image, "failing", plan, failing=True)
    finally:
        cluster.destroy()
    report([calm, failing])


if __name__ == "__main__":
    main()
