"""Soak: jobs fail and resize for a set time while the API answers 429, 500 and 409, slows down
and cuts watches; etcd, the API server and the controller manager restart once; the active one of
two operator replicas is killed once. Then the faults stop and the jobs must converge.

Run: .venv/bin/python -m bench.api_faults_soak [--seconds 300] [--jobs 8] [--seed 1]
Prints: faults injected by kind; worker failures and resizes made; jobs lost; duplicate children
seen at any time; restarts counted twice or not at all; seconds from the last fault until each
job converged (p50, max) and the failover time (the active replica killed, then a worker failed:
until that worker was replaced). Asserts nothing about timings; exits 1 if a job was lost or a
child or a restart doubled.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringleader.constants import LABEL_JOB_NAME, LABEL_REPLICA_INDEX, LABEL_ROLE, ROLE_WORKER
from tests.harness import OperatorProcess
from tests.kube import Kube, known_as, worker_selector
from tools.faultproxy.cluster import proxy_in_front
from tools.faultproxy.faults import Faults
from tools.faultproxy.proxy import FaultProxy
from tools.localcluster.cluster import CONTROL_PLANE, LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir

BENCH_PORT_BASE = 18400
PROXY_PORT = BENCH_PORT_BASE + 61
NAMESPACE = "soak"
PEERING = "soak"
STORM = Faults(
    throttled=0.05, server_error=0.05, conflict=0.1, slow=0.1, slow_seconds=0.3, watch_cut_after=8
)
FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"
Obj = dict[str, Any]


def job_manifest(name: str, elastic: bool) -> Obj:
    container = {"name": "trainer", "image": "ringleader-trainer:0.1.0"}
    spec: Obj = {
        "replicas": 2,
        "template": {"spec": {"containers": [container]}},
        # Dozens of failures in a few minutes: none may fail the job for its budget.
        "failurePolicy": {"maxRestarts": 10000},
    }
    if elastic:
        spec["elastic"] = {"minReplicas": 1, "maxReplicas": 4}
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


@dataclass
class Soak:
    """What was done to the jobs, and what was seen of them."""

    kube: Kube
    rng: random.Random
    desired: dict[str, int]  # job -> worker replicas it should have
    elastic: set[str]
    failures: Counter[str] = field(default_factory=Counter)  # job -> worker failures injected
    resizes: int = 0
    duplicates: set[str] = field(default_factory=set)  # "<job> worker <i>" seen twice at once
    changed: dict[str, float] = field(default_factory=dict)  # job -> when it was failed/resized
    recoveries: list[float] = field(default_factory=list)  # seconds from a change to converged

    def pods(self) -> list[Obj]:
        items: list[Obj] = self.kube.get("pods", namespace=NAMESPACE)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def jobs(self) -> dict[str, Obj]:
        items = self.kube.get("dtj", namespace=NAMESPACE)["items"]
        return {j["metadata"]["name"]: j.get("status") or {} for j in items}

    def converged(self, job: str, status: Obj, pods: list[Obj]) -> bool:
        """Running with exactly its pods (the workers by slot: each incarnation has a name of its
        own), all ready, each failure counted once and nothing else counted."""
        own = [p for p in pods if _labels(p).get(LABEL_JOB_NAME) == job]
        workers = [f"{job}-worker-{i}-a0" for i in range(self.desired[job])]
        return (
            status.get("phase") == "Running"
            and sorted(known_as(p) for p in own) == sorted([f"{job}-rdzv", *workers])
            and all(_ready(p) for p in own)
            and status.get("restarts", 0) == self.failures[job]
        )

    def settled(self) -> set[str]:
        """The jobs converged right now; records any worker seen twice at once."""
        pods, jobs = self.pods(), self.jobs()
        self._record_duplicates(pods)
        ready = {job for job, status in jobs.items() if self.converged(job, status, pods)}
        now = time.monotonic()
        self.recoveries += [now - self.changed.pop(job) for job in ready & set(self.changed)]
        return ready

    def _record_duplicates(self, pods: list[Obj]) -> None:
        seen: Counter[str] = Counter()
        for pod in pods:
            labels = _labels(pod)
            if labels.get(LABEL_ROLE) == ROLE_WORKER:
                seen[f"{labels[LABEL_JOB_NAME]} worker {labels[LABEL_REPLICA_INDEX]}"] += 1
        self.duplicates |= {key for key, count in seen.items() if count > 1}

    def fail_a_worker(self, job: str) -> str:
        """Fail the pod of one of the job's workers (settled: one pod per slot)."""
        index = self.rng.randrange(self.desired[job])
        selector = worker_selector(job, index, attempt=0)
        found = self.kube.get("pods", namespace=NAMESPACE, selector=selector)["items"]
        pod = str(
            next(p["metadata"]["name"] for p in found if not p["metadata"].get("deletionTimestamp"))
        )
        notes = [f"{FAIL}/exit-code=137", f"{FAIL}/reason=OOMKilled"]
        self.kube.run("annotate", "pod", pod, "-n", NAMESPACE, *notes, "--overwrite")
        self.kube.run("label", "pod", pod, "-n", NAMESPACE, f"{FAIL}=true", "--overwrite")
        self.failures[job] += 1
        self.changed.setdefault(job, time.monotonic())
        return pod

    def resize(self, job: str) -> None:
        size = self.rng.choice([n for n in range(1, 5) if n != self.desired[job]])
        self.kube.run("scale", "dtj", job, f"--replicas={size}", "-n", NAMESPACE)
        self.desired[job] = size
        self.resizes += 1
        self.changed.setdefault(job, time.monotonic())

    def act_on_one(self) -> None:
        """Fail a worker of, or resize, one job that has settled since its last change."""
        ready = sorted(self.settled())
        if not ready:
            return
        job = self.rng.choice(ready)
        if job in self.elastic and self.rng.random() < 0.4:
            self.resize(job)
        else:
            self.fail_a_worker(job)


def _labels(pod: Obj) -> dict[str, str]:
    return dict(pod["metadata"].get("labels") or {})


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def wait_for(soak: Soak, jobs: set[str], timeout: float) -> dict[str, float]:
    """Seconds until each of the jobs first converged (missing: never, within timeout)."""
    started, done = time.monotonic(), dict[str, float]()
    while time.monotonic() - started < timeout and len(done) < len(jobs):
        now = time.monotonic() - started
        for job in soak.settled() & jobs:
            done.setdefault(job, now)
        time.sleep(0.5)
    return done


@dataclass
class Rig:
    """The cluster, the proxy and the two operator replicas the soak runs on."""

    cluster: LocalCluster
    proxy: FaultProxy
    replicas: list[OperatorProcess]


def start_rig(layout: Layout, seed: int, logs: Path) -> Rig:
    cluster = LocalCluster(layout)
    cluster.destroy()
    cluster.up()
    for path in ("crds", "charts/ringleader/crds"):
        cluster.install_crds(REPO_ROOT / path)
    cluster.kubectl("create", "namespace", NAMESPACE)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({**peering, "metadata": {"name": PEERING}})
    )
    kubeconfig = layout.root / "proxied.kubeconfig"
    proxy = proxy_in_front(layout, PROXY_PORT, seed, kubeconfig)
    logs.mkdir(parents=True, exist_ok=True)
    replicas = [OperatorProcess(kubeconfig, logs / f"operator-{n}.log") for n in "ab"]
    for replica, priority in zip(replicas, (200, 100), strict=True):
        replica.start(args=_peering_args(priority))
    return Rig(cluster, proxy, replicas)


def _peering_args(priority: int) -> tuple[str, ...]:
    return (f"--peering={PEERING}", f"--priority={priority}", "--peering-lifetime=10")


def fail_over(rig: Rig, soak: Soak) -> float | None:
    """Kill the active replica, fail a worker at once: seconds until the job converged again.
    The killed replica comes back as the standby."""
    ready = sorted(wait_for(soak, set(soak.desired), 120))
    if not ready:
        return None
    job = soak.rng.choice(ready)
    rig.replicas[0].kill()
    killed = time.monotonic()
    soak.fail_a_worker(job)
    waited_from = time.monotonic()
    took = wait_for(soak, {job}, 180).get(job)
    rig.replicas[0].start(args=_peering_args(50))
    return None if took is None else waited_from - killed + took


def storm(rig: Rig, soak: Soak, seconds: float) -> float | None:
    """Faults and actions for `seconds`, a control-plane restart at a third, a failover at two
    thirds; returns the failover time."""
    rig.proxy.faults = STORM
    started, restarted, failover = time.monotonic(), False, None
    failed_over = False
    while (elapsed := time.monotonic() - started) < seconds:
        if not restarted and elapsed > seconds / 3:
            rig.cluster.restart(*CONTROL_PLANE)  # see tests/integration/test_api_faults.py
            restarted = True
        elif not failed_over and elapsed > 2 * seconds / 3:
            failover, failed_over = fail_over(rig, soak), True
        else:
            soak.act_on_one()
        time.sleep(1)
    rig.proxy.faults = Faults.none()
    return failover


def report(rig: Rig, soak: Soak, converged: dict[str, float], failover: float | None) -> bool:
    """Print the figures; True when no job was lost, nothing was doubled or dropped, and every
    job converged once the faults stopped."""
    statuses = soak.jobs()
    lost = [j for j in soak.desired if statuses.get(j, {}).get("phase") in (None, "Failed")]
    doubled = {j: s.get("restarts", 0) - soak.failures[j] for j, s in statuses.items()}
    print(f"faults injected by kind: {dict(sorted(rig.proxy.injected.items()))}")
    print(f"worker failures injected: {sum(soak.failures.values())}; resizes: {soak.resizes}")
    print(f"jobs lost: {len(lost)} {lost}")
    print(f"duplicate children seen: {len(soak.duplicates)} {sorted(soak.duplicates)}")
    print(f"restarts counted twice: {sum(d for d in doubled.values() if d > 0)}; "
          f"not counted: {-sum(d for d in doubled.values() if d < 0)}")  # fmt: skip
    _print_times(soak, converged)
    print(f"failover (active replica killed, a worker failed, until replaced): {failover} s")
    for job in sorted(set(soak.desired) - set(converged)):
        _print_unconverged(soak, job, statuses.get(job, {}))
    print(f"operators' logs: {rig.replicas[0].log_path.parent}")
    counted_right = all(d == 0 for d in doubled.values())
    all_converged = converged.keys() >= soak.desired.keys()
    return not lost and not soak.duplicates and counted_right and all_converged


def _print_times(soak: Soak, converged: dict[str, float]) -> None:
    times = sorted(converged.values())
    if times:
        print(f"converged after the faults stopped: {len(times)}/{len(soak.desired)} jobs, "
              f"p50 {statistics.median(times):.1f} s, max {times[-1]:.1f} s")  # fmt: skip
    if len(soak.recoveries) > 1:
        cuts = statistics.quantiles(soak.recoveries, n=100)
        print(f"converged after each failure or resize, under the faults: "
              f"{len(soak.recoveries)} changes, p50 {cuts[49]:.1f} s, p99 {cuts[98]:.1f} s, "
              f"max {max(soak.recoveries):.1f} s")  # fmt: skip


def _print_unconverged(soak: Soak, job: str, status: Obj) -> None:
    mine = [p for p in soak.pods() if p["metadata"]["name"].startswith(f"{job}-")]
    pods = sorted(p["metadata"]["name"] for p in mine)
    counted = f"restarts {status.get('restarts', 0)} of {soak.failures[job]} failures"
    print(f"not converged: {job}: {status.get('phase')}, {counted}, pods {pods}")
    print(f"  wanted {soak.desired[job]} workers; status: {json.dumps(status, sort_keys=True)}")
    for pod in sorted(mine, key=lambda p: p["metadata"]["name"]):
        meta, state = pod["metadata"], pod.get("status") or {}
        print(f"  {meta['name']} uid {meta.get('uid')} made {meta.get('creationTimestamp')} "
              f"deleting {meta.get('deletionTimestamp')} phase {state.get('phase')} "
              f"node {pod['spec'].get('nodeName')}")  # fmt: skip


def run(seconds: float, jobs: int, seed: int, logs: Path) -> bool:
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), BENCH_PORT_BASE)
    rig = start_rig(layout, seed, logs)
    try:
        names = {f"job-{i}": i % 2 == 1 for i in range(jobs)}  # every other one elastic
        kube = Kube(layout.kubeconfig)
        for name, elastic in names.items():
            kube.apply(job_manifest(name, elastic), NAMESPACE)
        growable = {name for name, elastic in names.items() if elastic}
        soak = Soak(kube, random.Random(seed), dict.fromkeys(names, 2), growable)
        wait_for(soak, set(names), 180)
        failover = storm(rig, soak, seconds)
        converged = wait_for(soak, set(names), 300)
        return report(rig, soak, converged, failover)
    finally:
        for replica in rig.replicas:
            replica.stop()
        rig.proxy.stop()
        rig.cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/ringleader-soak"))
    args = parser.parse_args()
    sys.exit(0 if run(args.seconds, args.jobs, args.seed, args.logs) else 1)


if __name__ == "__main__":
    main()
