"""Benchmark the local cluster: start-up time (fresh and restarted) and control-plane memory.

Run: .venv/bin/python -m bench.cluster_startup   (binaries must be built: `make binaries`)
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir

BENCH_PORT_BASE = 18400
PODS_UNDER_LOAD = 200


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _memory_mib(cluster: LocalCluster) -> dict[str, float]:
    return {state.name: state.rss_bytes / 2**20 for state in cluster.status()}


def _load_pods(cluster: LocalCluster, count: int) -> float:
    """Create a Deployment of `count` pods on the fake nodes; seconds until all run."""
    labels = {"app": "bench"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    while True:
        # Pods themselves, not the Deployment's status: its readyReplicas lags by many seconds.
        pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=bench", "-o", "json"))["items"]
        if sum(pod["status"].get("phase") == "Running" for pod in pods) == count:
            return time.monotonic() - started
        time.sleep(0.2)


def _print_memory(title: str, memory: dict[str, float]) -> None:
    parts = ", ".join(f"{name} {mib:.0f}" for name, mib in memory.items())
    print(f"{title}: total {sum(memory.values()):.0f} MiB ({parts})")


def main() -> None:
    """Measure and print."""
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), BENCH_PORT_BASE)
    cluster = LocalCluster(layout)
    cluster.destroy()
    try:
        fresh = _timed(cluster.up)
        print(f"up, fresh state (new PKI, empty etcd):   {fresh:.1f} s")
        _print_memory("memory idle (RSS)", _memory_mib(cluster))
        cluster.down()
        restart = _timed(cluster.up)
        print(f"up, existing state (after down):        {restart:.1f} s")
        ready = _load_pods(cluster, PODS_UNDER_LOAD)
        print(f"{PODS_UNDER_LOAD} pods created, scheduled and Running:  {ready:.1f} s")
        _print_memory(f"memory with {PODS_UNDER_LOAD} pods (RSS)", _memory_mib(cluster))
    finally:
        cluster.destroy()
    print(f"(state directory {Path(layout.root).name} removed)")


if __name__ == "__main__":
    main()
