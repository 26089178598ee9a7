"""Gang jobs through Kueue: many jobs of 8 one-GPU workers, quota and nodes for only some of them
at a time, each gang bound whole by scheduler-plugins' coscheduling plugin (issue 18).

Run: .venv/bin/python -m bench.kueue_gangs [--jobs 100] [--room 50] [--run-seconds 20]
Uses its own cluster in .cluster-bench/ on ports 20400+ (RINGLEADER_BENCH_PORT_BASE moves them),
with Kueue and coscheduling (built once, long) and the operator from this checkout. kwok runs the
pods: each worker finishes `run-seconds` after it starts (kwok's pod-complete stage), its job
Succeeds, Kueue marks the Workload Finished and admits the next.

Prints: seconds from applying every job until all have Succeeded; the most jobs running at once;
the most gangs partly bound at once (some workers bound to a node, some not) and the longest any
gang stayed so (a gang scheduler binds a gang's pods in one burst, so only that burst's
milliseconds should show). Followed from a pod watch, every event. Asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from typing import Any

from kubernetes import client, config, watch

from ringleader import constants as c
from ringleader import kueueworkload as kw
from tests.harness import OperatorProcess
from tests.kube import Kube
from tools.localcluster import schedulers
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir
from tools.localcluster.nodes import GPUS_PER_NODE, NODE_POOL_LABEL, build_fake_gpu_node

PORT_BASE = int(os.environ.get("RINGLEADER_BENCH_PORT_BASE", "20400"))
NAMESPACE = "gangs"
POOL = "gangs"
WORKERS = 8
GPUS = "nvidia.com/gpu"
KUEUE_API = c.KUEUE_API_VERSION
Obj = dict[str, Any]
# Longer than a gang scheduler's burst of bindings: a gang holding part of its GPUs while it waits.
STUCK_SECONDS = 1.0


def build_nodes(room: int) -> list[Obj]:
    """Nodes for `room` jobs of WORKERS one-GPU workers, labelled and tainted for the pool."""
    count = room * WORKERS // GPUS_PER_NODE
    nodes = []
    for index in range(count):
        node = build_fake_gpu_node(f"{POOL}-{index}", f"10.242.{index // 200}.{10 + index % 200}")
        node["metadata"]["labels"][NODE_POOL_LABEL] = POOL
        node["spec"] = {"taints": [{"key": NODE_POOL_LABEL, "value": POOL, "effect": "NoSchedule"}]}
        nodes.append(node)
    return nodes


def build_queues(room: int) -> list[Obj]:
    """A flavor of the pool's nodes and quota for exactly `room` jobs' GPUs."""
    toleration = {
        "key": NODE_POOL_LABEL,
        "operator": "Equal",
        "value": POOL,
        "effect": "NoSchedule",
    }
    quotas = [
        {"name": "cpu", "nominalQuota": "10000"},
        {"name": "memory", "nominalQuota": "100Ti"},
        {"name": GPUS, "nominalQuota": str(room * WORKERS)},
    ]
    return [
        {
            "apiVersion": KUEUE_API,
            "kind": "ResourceFlavor",
            "metadata": {"name": POOL},
            "spec": {"nodeLabels": {NODE_POOL_LABEL: POOL}, "tolerations": [toleration]},
        },
        {
            "apiVersion": KUEUE_API,
            "kind": "ClusterQueue",
            "metadata": {"name": POOL},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPUS],
                        "flavors": [{"name": POOL, "resources": quotas}],
                    }
                ],
            },
        },
        {
            "apiVersion": KUEUE_API,
            "kind": "LocalQueue",
            "metadata": {"name": "team", "namespace": NAMESPACE},
            "spec": {"clusterQueue": POOL},
        },
    ]


def build_job(index: int, run_seconds: float, gang: bool) -> Obj:
    """WORKERS one-GPU workers queued with Kueue, each finishing after run_seconds; a gang bound
    by coscheduling, or (the control) pods kube-scheduler binds one by one."""
    container = {
        "name": "trainer",
        "image": "ringleader-trainer:0.1.0",
        "resources": {"limits": {GPUS: "1"}},
    }
    metadata = {
        "labels": {"pod-complete.stage.ringleader.dev": "true"},
        "annotations": {"pod-complete.stage.ringleader.dev/delay": f"{run_seconds}s"},
    }
    scheduling: Obj = {"gang": gang}
    if gang:
        scheduling["schedulerName"] = schedulers.COSCHEDULING_SCHEDULER_NAME
    return {
        "apiVersion": "ringleader.dev/v1alpha1",
        "kind": "DistributedTrainingJob",
        "metadata": {"name": f"gang-{index:03d}", "labels": {kw.QUEUE_LABEL: "team"}},
        "spec": {
            "replicas": WORKERS,
            "scheduling": scheduling,
            "template": {"metadata": metadata, "spec": {"containers": [container]}},
        },
    }


class Binding:
    """Each gang's workers as the pod watch reports them: bound (a node named) or not."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bound: dict[str, dict[str, bool]] = defaultdict(dict)  # job → pod → bound
        self.partly_since: dict[str, float] = {}
        self.most_partly = 0
        self.longest_partly = 0.0
        self.events = 0
        self.stuck = 0  # gangs that stayed partly bound longer than STUCK_SECONDS

    def seen(self, kind: str, pod: Obj) -> None:
        """One watch event of a worker pod."""
        meta = pod["metadata"]
        job = meta["labels"]["ringleader.dev/job-name"]
        now = time.monotonic()
        with self.lock:
            self.events += 1
            pods = self.bound[job]
            if kind == "DELETED":
                pods.pop(meta["name"], None)
            else:
                pods[meta["name"]] = bool(pod["spec"].get("nodeName"))
            bound = sum(pods.values())
            partly = 0 < bound < WORKERS
            if partly:
                self.partly_since.setdefault(job, now)
            elif job in self.partly_since:
                lasted = now - self.partly_since.pop(job)
                self.longest_partly = max(self.longest_partly, lasted)
                self.stuck += lasted > STUCK_SECONDS
            self.most_partly = max(self.most_partly, len(self.partly_since))


def follow(binding: Binding, kubeconfig: str, stop: threading.Event) -> None:
    """Feed every worker pod's events to binding until stopped."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    stream = watch.Watch()
    while not stop.is_set():
        for event in stream.stream(
            core.list_namespaced_pod, NAMESPACE, label_selector="ringleader.dev/role=worker",
            timeout_seconds=30,
        ):  # fmt: skip
            binding.seen(event["type"], event["raw_object"])
            if stop.is_set():
                return


def phases(kube: Kube) -> dict[str, str]:
    jobs = kube.get("dtj", namespace=NAMESPACE)["items"]
    return {j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in jobs}


def run(jobs: int, room: int, run_seconds: float, gang: bool) -> None:
    layout = Layout(REPO_ROOT / ".cluster-bench", cached_bin_dir(), PORT_BASE)
    cluster = LocalCluster(layout)
    cluster.destroy()
    cluster.up()
    stop = threading.Event()
    try:
        cluster.start_schedulers([schedulers.KUEUE, schedulers.COSCHEDULING])
        cluster.install_crds(REPO_ROOT / "crds")
        kube = Kube(layout.kubeconfig)
        kube.run("create", "namespace", NAMESPACE)
        kube.apply(build_nodes(room), NAMESPACE)
        kube.run("wait", "--for=condition=Ready", "node", "-l", f"{NODE_POOL_LABEL}={POOL}",
                 "--timeout=120s")  # fmt: skip
        kube.apply(build_queues(room), NAMESPACE)
        operator = OperatorProcess(layout.kubeconfig, layout.log_dir / "bench-operator.log")
        operator.start()
        binding = Binding()
        follower = threading.Thread(
            target=follow, args=(binding, str(layout.kubeconfig), stop), daemon=True
        )
        follower.start()
        time.sleep(5)  # the operator's watches listed
        started = time.monotonic()
        kube.apply([build_job(i, run_seconds, gang) for i in range(jobs)], NAMESPACE)
        most_running = 0
        while True:
            now = phases(kube)
            most_running = max(most_running, sum(1 for p in now.values() if p == "Running"))
            if len(now) == jobs and all(p == "Succeeded" for p in now.values()):
                break
            if time.monotonic() - started > 60 * 60:
                raise SystemExit(f"not all Succeeded after an hour: {sorted(set(now.values()))}")
            time.sleep(1)
        elapsed = time.monotonic() - started
        binder = "coscheduling (gang)" if gang else "kube-scheduler (no gang: the control)"
        print(f"{jobs} jobs x {WORKERS} workers bound by {binder}, room for {room} at a time, "
              f"each {run_seconds:.0f} s of work")  # fmt: skip
        print(f"all Succeeded after {elapsed:.1f} s (the work alone: "
              f"{-(-jobs // room) * run_seconds:.0f} s in {-(-jobs // room)} waves)")  # fmt: skip
        print(f"most jobs Running at once: {most_running}")
        print(f"most gangs partly bound at once: {binding.most_partly}")
        print(f"longest any gang stayed partly bound: {binding.longest_partly * 1000:.0f} ms")
        print(f"gangs partly bound for more than {STUCK_SECONDS:.0f} s: {binding.stuck}")
        print(f"pod events followed: {binding.events}")
        operator.stop()
    finally:
        stop.set()
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--room", type=int, default=50, help="jobs that fit at a time")
    parser.add_argument("--run-seconds", type=float, default=20)
    parser.add_argument("--no-gang", action="store_true", help="the control: kube-scheduler")
    args = parser.parse_args()
    run(args.jobs, args.room, args.run_seconds, gang=not args.no_gang)


if __name__ == "__main__":
    main()
