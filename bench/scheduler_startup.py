"""Benchmark the optional schedulers in the local cluster: start, stop and memory of each.

Run: .venv/bin/python -m bench.scheduler_startup   (builds them first if needed: long, once)
Uses its own cluster in .cluster-bench/ on ports 20400+ (RINGLEADER_BENCH_PORT_BASE moves them).
Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

from tools.localcluster import schedulers
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir

PORT_BASE = int(os.environ.get("RINGLEADER_BENCH_PORT_BASE", "20400"))


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _print_memory(cluster: LocalCluster) -> None:
    for state in cluster.status():
        print(f"  {state.name:<24} {state.rss_bytes / 2**20:.0f} MiB")


def main() -> None:
    """Start each scheduler alone, then stop each and remove its CRDs; print the figures."""
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), PORT_BASE)
    cluster = LocalCluster(layout)
    cluster.destroy()
    schedulers.cached_homes(list(schedulers.NAMES))  # builds, untimed
    try:
        print(f"up, no addons: {_timed(cluster.up):.1f} s")
        for name in schedulers.NAMES:
            seconds = _timed(functools.partial(cluster.start_schedulers, [name]))
            print(f"start {name}: {seconds:.1f} s")
        time.sleep(5)  # let their informers settle before reading memory
        print("memory (RSS) with all of them:")
        _print_memory(cluster)
        for name in schedulers.NAMES:
            stop = functools.partial(cluster.stop_schedulers, (name,), remove_crds=True)
            print(f"stop {name} and remove its CRDs: {_timed(stop):.1f} s")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
