"""Benchmark: what the progress poller costs with N running jobs, stand-in trainers answering.

Run (root: kwok's pod addresses are routed to this host):
    .venv/bin/python -m bench.progress_poller [--jobs 1000] [--workers 8] [--seconds 60]
        [--budget 20]

kwok's pods run nothing, so one stand-in trainer on this host answers for all of them: kwok's
pod address range is made local to this host (`ip route add local`, the route removed after),
and an HTTP server on the progress port answers every pod's address with a progress document.
The operator runs with --progress-writes-per-second=--budget (0: a status write at every poll
that sees a new step). Once every job Runs, its first report is in its status and the operator
has settled, two windows of --seconds each:

    training   each job's step moves on (a step every --step-seconds)
    finishing  each job says Finishing: its step stands still on purpose, nothing changes

For each: the poller's requests per second (as the stand-in served them), the operator's CPU
seconds per second, and its API writes in the window (API server audit log), by kind. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import multiprocessing
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized

from bench.apiwrites import read_writes
from bench.cpu import cpu_seconds
from bench.operator_burst import (
    NAMESPACE,
    measure_burst,
    operator_on_kwok,
    peak_rss_mib,
    print_audited,
)
from ringleader import constants as c
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import POD_CIDR

TRAINING, FINISHING = 0, 1
POLL_SECONDS = 5.0  # the operator's --progress-interval, left at its default
SETTLE_SECONDS = 30.0  # after every job's first report is in status: the writes of the start


@dataclass(frozen=True)
class Pace:
    """The stand-in's training: a step every `step_seconds` from `since` (epoch seconds)."""

    since: float
    step_seconds: float
    workers: int

    def document(self, mode: int, frozen_at: float) -> dict[str, object]:
        """The progress document every pod answers with: moving on, or stood at `frozen_at`."""
        now = time.time() if mode == TRAINING else frozen_at
        step = int((now - self.since) / self.step_seconds) + 1
        return {
            "step": step,
            "state": "Training" if mode == TRAINING else "Finishing",
            "updated_at": self.since + step * self.step_seconds,
            "seconds_per_step": self.step_seconds,
            "samples_per_second": 64 / self.step_seconds,
            "world_size": self.workers,
            "loss": 1.0 / step,
        }


def serve_standin(
    pace: Pace, mode: Synchronized[int], frozen_at: Synchronized[float], served: Synchronized[int]
) -> None:
    """Answer every pod address on the progress port until killed (a process of its own)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with served.get_lock():
                served.value += 1
            if self.path != "/progress":
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            body = json.dumps(pace.document(mode.value, frozen_at.value)).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer(("0.0.0.0", c.PROGRESS_PORT), Handler).serve_forever()


@contextlib.contextmanager
def pod_addresses_routed_here() -> Iterator[None]:
    """kwok's pod range local to this host for as long as the bench runs."""
    network = str(ipaddress.IPv4Network(POD_CIDR, strict=False))
    shown = ["ip", "route", "show", "table", "all", network]
    taken = subprocess.run(shown, check=True, capture_output=True, text=True)
    if taken.stdout.strip():
        raise SystemExit(
            f"{network} is routed already (a real-nodes cluster?): {taken.stdout.strip()}"
        )
    subprocess.run(["ip", "route", "add", "local", network, "dev", "lo"], check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "route", "del", "local", network, "dev", "lo"], check=False)


def wait_mirrored(cluster: LocalCluster, jobs: int) -> float:
    """Until every job's status shows the stand-in's progress; seconds it took."""
    started = time.monotonic()
    while True:
        items = json.loads(cluster.kubectl("get", "dtj", "-n", NAMESPACE, "-o", "json"))["items"]
        mirrored = sum(1 for job in items if (job.get("status") or {}).get("progress"))
        if mirrored >= jobs:
            return time.monotonic() - started
        time.sleep(2)


def measure_window(
    cluster: LocalCluster, operator_pid: int, served: Synchronized[int], seconds: float, what: str
) -> None:
    """Requests, CPU and API writes over one window of `seconds`."""
    since, cpu, requests = datetime.now(UTC), cpu_seconds(operator_pid), served.value
    time.sleep(seconds)
    until, used, asked = datetime.now(UTC), cpu_seconds(operator_pid) - cpu, served.value - requests
    print(f"{what}: {asked / seconds:.1f} requests/s, operator CPU {used / seconds:.3f} s/s")
    audited = read_writes(cluster.layout.audit_log, since, until)
    print_audited(f"{what}: writes in {seconds:.0f} s", audited)


def run(jobs: int, workers: int, seconds: float, step_seconds: float, budget: float) -> None:
    """Start the cluster, the operator and the stand-in; apply the jobs; measure the windows."""
    pace = Pace(time.time(), step_seconds, workers)
    mode = multiprocessing.Value("i", TRAINING)
    frozen_at = multiprocessing.Value("d", 0.0)
    served = multiprocessing.Value("l", 0)
    standin = multiprocessing.Process(
        target=serve_standin, args=(pace, mode, frozen_at, served), daemon=True
    )
    option = f"--progress-writes-per-second={budget:g}"
    with pod_addresses_routed_here(), operator_on_kwok(jobs * (workers + 1), option) as kwok:
        cluster, operator = kwok
        standin.start()
        try:
            measure_burst(cluster, jobs, workers)
            print(f"every job's progress in its status: {wait_mirrored(cluster, jobs):.1f} s")
            time.sleep(SETTLE_SECONDS)
            measure_window(cluster, operator.pid, served, seconds, f"training, {option}")
            frozen_at.value = time.time()
            mode.value = FINISHING
            # The one write of each job's last step, which may wait for the job's turn.
            time.sleep(2 * POLL_SECONDS + (jobs / budget if budget > 0 else 0.0))
            measure_window(cluster, operator.pid, served, seconds, "finishing")
            print(f"operator peak RSS: {peak_rss_mib(operator.pid):.0f} MiB")
        finally:
            standin.kill()


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="each window's length")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="the stand-in's pace")
    parser.add_argument("--budget", type=float, default=20.0, help="--progress-writes-per-second")
    args = parser.parse_args()
    run(args.jobs, args.workers, args.seconds, args.step_seconds, args.budget)


if __name__ == "__main__":
    main()
