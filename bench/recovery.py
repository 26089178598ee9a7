"""Benchmark: time from an injected failure to the next completed training step, on real nodes.

Run (root: real nodes, kubelet and containerd, with the operator installed by its chart and the
trainer image built from trainer-image/Dockerfile):
    .venv/bin/python -m bench.recovery [--failures 10] [--kinds kill-worker,delete-pod,...]

Each kind trains its own two-worker digits job through the operator and injects the failure
`--failures` times into worker 1, one at a time once the job has recovered and checkpointed:

    kill-worker       kill -9 one training process; its pod's elastic agent restarts it in place
    delete-pod        delete a worker pod; it checkpoints and leaves, the operator recreates it
                      and the group re-forms with it (the survivor waits, it is not restarted)
    fail-pod-inplace  kill -9 a pod's launcher (the pod fails, exit 137); the operator replaces
                      only that pod (RestartWorker, the default)
    fail-pod-gang     the same failure under a RestartGang rule: the whole gang restarts
    delete-node       lose the node of a worker (not the rendezvous pod's): its kubelet and
                      containerd stop, its containers die, its Node is deleted; the operator
                      force-deletes its pods and replaces the worker; the node is started again
                      once no pod is bound to it, and the replacement starts there

The clock starts when the failure is injected and stops at the first step completed by a
training process that started after it (every recovery restarts all processes), read from the
trainer's per-step traces (`--trace-dir` on the job's volume). Prints p50/p95 per kind, side by
side. Asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ringleader_client.progressfiles import heartbeat_path, read_json
from tests.kube import worker_selector
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL

BENCH_PORT_BASE = 18400
NAMESPACE = "recovery"
TRACE_DIR = "/checkpoints/bench-trace"
STEP_SECONDS = "0.05"
RECOVERY_TIMEOUT = 240.0
LOCAL_NODES = 2
KINDS = ("kill-worker", "delete-pod", "fail-pod-inplace", "fail-pod-gang", "delete-node")


def build_job(name: str, kind: str, image: str) -> dict[str, Any]:
    """A two-worker digits job in `image` that runs until deleted, tracing every step."""
    args = [
        "--workload", "digits", "--epochs", "100000", "--checkpoint-every", "20",
        "--min-step-seconds", STEP_SECONDS, "--trace-dir", TRACE_DIR,
    ]  # fmt: skip
    trainer = {
        "name": "trainer",
        "image": image,
        "imagePullPolicy": "Never",  # built here and imported into the nodes
        "command": ["python", "-m", "ringleader_trainer.launch"],
        "args": args,
    }
    policy: dict[str, Any] = {"maxRestarts": 1000}
    if kind in ("fail-pod-inplace", "fail-pod-gang"):  # RestartWorker is also the default
        action = "RestartWorker" if kind == "fail-pod-inplace" else "RestartGang"
        policy["rules"] = [{"classes": ["Unknown"], "action": action}]
    pod_spec: dict[str, Any] = {
        "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
        "terminationGracePeriodSeconds": 20,
        "containers": [trainer],
    }
    if kind == "delete-node":  # a worker on each node: one of them is off the store's node
        workers = {"ringleader.dev/job-name": name, "ringleader.dev/role": "worker"}
        apart = {"labelSelector": {"matchLabels": workers}, "topologyKey": "kubernetes.io/hostname"}
        pod_spec["affinity"] = {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [apart]}
        }
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "checkpoint": {"size": "1Gi"},
            "failurePolicy": policy,
            "template": {"spec": pod_spec},
        },
    }


def pod_processes(pod: str) -> Iterator[Path]:
    """/proc entries of the pod's processes (found by the name the operator puts in their env)."""
    marker = f"RINGLEADER_POD_NAME={pod}".encode() + b"\0"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes():
                yield proc
        except OSError:
            continue  # gone meanwhile


def find_pids(pod: str, module: str) -> list[int]:
    """Host pids of this pod's processes started as `python -m <module>`."""
    found = []
    for proc in pod_processes(pod):
        try:
            if module.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return found


def host_pid(pod: str, pid_in_pod: int) -> int | None:
    """The host pid of the pod's process that is `pid_in_pod` in the pod's own PID namespace
    (a heartbeat names its writer as the container sees it)."""
    for proc in pod_processes(pod):
        try:
            status = (proc / "status").read_text().splitlines()
            nspid = next(line for line in status if line.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue  # gone meanwhile
        if int(nspid.split()[-1]) == pid_in_pod:
            return int(proc.name)
    return None


def traces_in(volume: Path) -> Path:
    """Where the trainers write their step traces on a job's checkpoint volume."""
    return volume / Path(TRACE_DIR).name


@dataclass
class Bench:
    """One job of one kind on the bench cluster."""

    cluster: LocalCluster
    name: str

    def return_when_unbound(self, node: str) -> None:
        """Once no pod is bound to the lost node any more (the operator force-deletes them),
        start it again: the workers' anti-affinity keeps the replacement off the survivor's."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            pods = self.kubectl_json("get", "pods")["items"]
            if not any(p["spec"].get("nodeName") == node for p in pods):
                self.cluster.start_nodes([node])
                return
            time.sleep(0.2)
        raise TimeoutError(f"pods still bound to the lost node {node}")

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        out = self.cluster.kubectl(*args, "-n", NAMESPACE, "-o", "json")
        return dict(json.loads(out))

    def status(self) -> dict[str, Any]:
        return dict(self.kubectl_json("get", "dtj", self.name).get("status") or {})

    def worker(self, index: int) -> str:
        """Name of worker `index`'s pod in the job's current restart attempt, found by its
        labels (each incarnation of a worker has a name of its own)."""
        attempt = self.status().get("restartAttempt") or 0
        selector = worker_selector(self.name, index, attempt)
        pods = self.kubectl_json("get", "pods", "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if not live:
            raise RuntimeError(f"{self.name}: no pod of worker {index} in attempt {attempt}")
        return str(live[0]["metadata"]["name"])

    def volume(self) -> Path:
        """The job's checkpoint volume, as the host sees it."""
        found = self.volume_if_made()
        if found is None:
            raise RuntimeError(f"{self.name}: no checkpoint claim")
        return found

    def volume_if_made(self) -> Path | None:
        """The checkpoint volume; None until the operator has made the job's claim (a moment
        after the job)."""
        selector = f"metadata.name={self.name}-checkpoint"
        claims = self.kubectl_json("get", "pvc", "--field-selector", selector)["items"]
        if not claims:
            return None
        return self.cluster.layout.root / "volumes" / f"pvc-{claims[0]['metadata']['uid']}"

    def trace_dir(self) -> Path:
        return traces_in(self.volume())

    def process_starts(self) -> list[float]:
        """For each training process so far, the time of its first completed step (none while
        the job's claim is not made yet)."""
        volume = self.volume_if_made()
        if volume is None:
            return []
        starts = []
        for path in traces_in(volume).glob("trace-*.jsonl"):
            first = path.open().readline()
            if first.endswith("\n"):
                starts.append(float(json.loads(first)["time"]))
        return starts

    def first_step_after(self, moment: float) -> float:
        """Seconds from `moment` to the first step of a process that started after it."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            later = [t for t in self.process_starts() if t > moment]
            if later:
                return min(later) - moment
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no step within {RECOVERY_TIMEOUT:.0f}s of the failure")

    def wait_checkpoint_after(self, moment: float) -> None:
        """Until the status shows a checkpoint taken after `moment` (the next failure then
        loses little, and gang restarts do not back off)."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            taken = (self.status().get("checkpoint") or {}).get("time")
            if taken and datetime.fromisoformat(taken.replace("Z", "+00:00")).timestamp() > moment:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: no checkpoint after the recovery")

    def node_to_delete(self) -> str:
        """The node of a worker that the rendezvous pod is not on (worker 1's if it can be):
        losing the rendezvous pod too would be another failure."""
        pods = self.kubectl_json("get", "pods")["items"]
        where = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
        store = where.get(f"{self.name}-rdzv")
        for index in (1, 0):
            node = where.get(self.worker(index))
            if node and node != store:
                return str(node)
        raise RuntimeError(f"{self.name}: both workers share the rendezvous pod's node {store}")


def inject(bench: Bench, kind: str) -> float:
    """Inject one failure into worker 1 (or its node); return the time it was injected."""
    pod = bench.worker(1)
    if kind == "delete-node":
        node = bench.node_to_delete()
        moment = time.time()
        bench.cluster.lose_node(node, delete=True)
        bench.return_when_unbound(node)  # as a machine back from repair, with nothing on it
        return moment
    if kind == "delete-pod":
        moment = time.time()
        bench.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")
        return moment
    if kind == "kill-worker":  # the training process that wrote the pod's last heartbeat
        beat = read_json(heartbeat_path(bench.volume(), pod)) or {}
        found = host_pid(pod, int(beat["pid"])) if "pid" in beat else None
        pids = [found] if found else []
    else:
        pids = find_pids(pod, "ringleader_trainer.launch")
    if not pids:
        raise RuntimeError(f"no process to kill found for pod {pod} ({kind})")
    moment = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return moment


def measure_kind(
    cluster: LocalCluster, image: str, kind: str, failures: int, keep: bool
) -> list[float]:
    """Run one job of this kind and return the recovery times of its injected failures."""
    bench = Bench(cluster, kind)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(build_job(kind, kind, image)))
    started = time.time()
    bench.first_step_after(started)
    bench.wait_checkpoint_after(time.time())
    times = []
    for i in range(failures):
        moment = inject(bench, kind)
        took = bench.first_step_after(moment)
        times.append(took)
        print(f"  {kind} #{i + 1}: {took:.1f} s", flush=True)
        bench.wait_checkpoint_after(moment + took)
    if not keep:
        cluster.kubectl("delete", "dtj", kind, "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return ordered[0] if q <= 0 else cuts[int(q) - 1]


def bench_cluster() -> LocalCluster:
    """The benches' own cluster (.cluster-bench, ports 18400+) with two real training nodes."""
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), BENCH_PORT_BASE)
    return LocalCluster(layout, local_nodes=LOCAL_NODES)


def start_bench_cluster(cluster: LocalCluster) -> str:
    """Start it, install the operator by its chart, import the trainer image into the training
    nodes, create the namespace; return the trainer image."""
    cluster.up()
    cluster.install_operator()
    [image] = cluster.import_images(["trainer"])
    cluster.kubectl("create", "namespace", NAMESPACE)
    return image.ref


def main() -> None:
    """Bring up the bench cluster with two real nodes and the operator; measure each kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=10, help="failures injected per kind")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--keep", action="store_true", help="leave the cluster and its logs up afterwards"
    )
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--kinds: unknown {sorted(unknown)}; known: {', '.join(KINDS)}")
    cluster = bench_cluster()
    cluster.destroy()
    results: dict[str, list[float]] = {}
    try:
        image = start_bench_cluster(cluster)
        for kind in kinds:
            print(f"{kind}:", flush=True)
            last = kind == kinds[-1]  # one job at a time: each kind measured on a quiet cluster
            keep = args.keep and last
            results[kind] = measure_kind(cluster, image, kind, args.failures, keep=keep)
    finally:
        if not args.keep:
            cluster.destroy()
    report(results)


def report(
    results: dict[str, list[float]],
    title: str = "time from failure to the next completed step (s)",
) -> None:
    """One line per kind: how many measurements, p50, p95, min, max (seconds)."""
    print(f"\n{title}:")
    print(f"  {'kind':<26}{'n':>4}{'p50':>8}{'p95':>8}{'min':>8}{'max':>8}")
    for kind, times in results.items():
        cells = [percentile(times, 50), percentile(times, 95), min(times), max(times)]
        print(f"  {kind:<26}{len(times):>4}" + "".join(f"{v:>8.1f}" for v in cells))


if __name__ == "__main__":
    main()
