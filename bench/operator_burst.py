"""Benchmark: a burst of K jobs x W workers applied at once to the operator on kwok nodes.

Run: .venv/bin/python -m bench.operator_burst [--jobs 200] [--workers 8] [--steady-seconds 60]
Prints: time until every child exists and every job is Running (from the moment kubectl
returned), API writes per job (the operator's own counter, and the API server's audit log:
bench.apiwrites), the operator's peak RSS, and the writes it makes in a steady state. Asserts
nothing about timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.apiwrites import Writes, read_writes
from ringleader import constants as c
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir
from tools.localcluster.nodes import build_fake_gpu_node

BENCH_PORT_BASE = 18400
METRICS_PORT = BENCH_PORT_BASE + 88  # the layout's operator metrics port, clear of the others
NAMESPACE = "burst"


def _job(name: str, workers: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    container = {"name": "trainer", "image": "ringleader-trainer:0.1.0"}
    template: dict[str, Any] = {"spec": {"containers": [container]}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": workers, "template": template},
    }


def _add_nodes(cluster: LocalCluster, pods_needed: int) -> None:
    """Enough extra fake nodes (110 pods each) for every pod of the burst."""
    count = pods_needed // 110 + 1
    nodes = [
        build_fake_gpu_node(f"kwok-burst-{i}", f"10.241.{i // 250}.{i % 250 + 1}")
        for i in range(count)
    ]
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
    )


def writes(metrics_port: int) -> dict[str, float]:
    """The operator's API writes so far by "verb kind" (its own counter)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    pattern = r'^ringleader_api_writes_total\{kind="([^"]+)",verb="([^"]+)"\} (\S+)$'
    found = re.findall(pattern, text.decode(), flags=re.MULTILINE)
    return {f"{verb} {kind}": float(value) for kind, verb, value in found}


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _count(cluster: LocalCluster, kind: str) -> int:
    out = cluster.kubectl(
        "get", kind, "-n", NAMESPACE, "-l", "app.kubernetes.io/managed-by=ringleader", "-o", "name"
    )
    return len(out.split())


def _phases(cluster: LocalCluster) -> dict[str, int]:
    jobs = json.loads(cluster.kubectl("get", "dtj", "-n", NAMESPACE, "-o", "json"))["items"]
    counts: dict[str, int] = {}
    for job in jobs:
        phase = (job.get("status") or {}).get("phase", "none")
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def start_operator(layout: Layout, *options: str) -> subprocess.Popen[bytes]:
    """The operator from this checkout, with these options, its log in the cluster's directory."""
    argv = [sys.executable, "-m", "ringleader", f"--kubeconfig={layout.kubeconfig}", *options]
    log = open(layout.root / "operator.log", "ab")  # noqa: SIM115  (lives as long as the operator)
    operator = subprocess.Popen(
        [*argv, f"--metrics-port={METRICS_PORT}"], stdout=log, stderr=subprocess.STDOUT
    )
    time.sleep(3)  # let it list and watch before the burst
    return operator


def prepare(cluster: LocalCluster, pods_needed: int) -> None:
    """CRDs, the namespace and enough kwok nodes."""
    cluster.install_crds(REPO_ROOT / "crds")
    cluster.kubectl("create", "namespace", NAMESPACE)
    _add_nodes(cluster, pods_needed)


def measure_burst(
    cluster: LocalCluster, jobs: int, workers: int, annotations: dict[str, str] | None = None
) -> None:
    """Apply the jobs at once (their pods with these annotations: kwok's stage settings); print
    when every child exists and every job is Running."""
    items = [_job(f"job-{i}", workers, annotations) for i in range(jobs)]
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": items})
    )
    accepted = time.monotonic()
    print(f"{jobs} jobs x {workers} workers accepted; waiting for their children")
    pods = jobs * (workers + 1)  # and the rendezvous
    services = jobs  # one headless Service a job names its workers and its rendezvous
    while _count(cluster, "pods") < pods or _count(cluster, "services") < services:
        time.sleep(0.5)
    print(f"all {pods} pods and {services} services exist: {time.monotonic() - accepted:.1f} s")
    while _phases(cluster).get("Running", 0) < jobs:
        time.sleep(1)
    print(f"all {jobs} jobs Running: {time.monotonic() - accepted:.1f} s")


def print_audited(what: str, audited: Writes, per: int = 1) -> None:
    """The writes the API server's audit log holds (per `per` jobs), with those it refused."""
    by_kind = {kind: round(n / per, 2) for kind, n in sorted(audited.by_kind.items())}
    refused = f", refused {dict(audited.refused)}" if audited.refused else ""
    print(f"{what} (API server audit log): {audited.total() / per:.2f}; {by_kind}{refused}")


def _report_writes(
    layout: Layout, jobs: int, operator_pid: int, steady_seconds: float, since: datetime
) -> None:
    time.sleep(5)  # trailing status writes and events
    burst = writes(METRICS_PORT)
    total, events = sum(burst.values()), burst.get("create Event", 0)
    print(f"API writes per job: {total / jobs:.2f} (events {events / jobs:.2f}); {burst}")
    settled = datetime.now(UTC)
    print_audited("API writes per job", read_writes(layout.audit_log, since, settled), jobs)
    print(f"operator peak RSS: {peak_rss_mib(operator_pid):.0f} MiB")
    # A minute after its workers started, a job whose trainers report nothing (kwok's pods) is
    # marked ProgressReported=False, once: a change of status, not activity at rest.
    time.sleep(c.NOT_REPORTED_AFTER_SECONDS + 10)
    quiet = datetime.now(UTC)
    print_audited("writes the minute after", read_writes(layout.audit_log, settled, quiet), jobs)
    time.sleep(steady_seconds)
    print_audited(
        f"writes in {steady_seconds:.0f} s of steady state", read_writes(layout.audit_log, quiet)
    )


@contextlib.contextmanager
def operator_on_kwok(
    pods_needed: int, *options: str
) -> Iterator[tuple[LocalCluster, subprocess.Popen[bytes]]]:
    """A fresh bench cluster with room for pods_needed pods and the operator running against
    it (with these options); both gone afterwards."""
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), BENCH_PORT_BASE)
    cluster = LocalCluster(layout)
    cluster.destroy()
    cluster.up()
    operator = None
    try:
        prepare(cluster, pods_needed)
        operator = start_operator(layout, *options)
        yield cluster, operator
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        cluster.destroy()


def run(jobs: int, workers: int, steady_seconds: float) -> None:
    """Start a cluster and the operator, apply the burst, print the figures."""
    with operator_on_kwok(jobs * (workers + 1)) as (cluster, operator):
        since = datetime.now(UTC)
        measure_burst(cluster, jobs, workers)
        _report_writes(cluster.layout, jobs, operator.pid, steady_seconds, since)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--steady-seconds", type=float, default=60)
    args = parser.parse_args()
    run(args.jobs, args.workers, args.steady_seconds)


if __name__ == "__main__":
    main()
