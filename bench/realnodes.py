"""Benchmark real local nodes: bring-up, image import per node, pod start latency, memory.

Run (root): .venv/bin/python -m bench.realnodes [--images user,trainer,operator] [--parallel]
(binaries and images are built first if missing: `make node-binaries images`). Uses its own
cluster in .cluster-bench-realnodes/ on port base 19600, destroyed at the end. Prints figures;
asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.localcluster import processes
from tools.localcluster.cluster import LocalCluster
from tools.localcluster.layout import REPO_ROOT, Layout, cached_bin_dir
from tools.realnodes.naming import LOCAL_POOL, NODE_POOL_LABEL, local_node_names
from tools.realnodes.node import RealNode
from tools.realnodes.nodeset import RealNodes, open_real_nodes

BENCH_PORT_BASE = 19600
NODES = 2
PARALLEL_PODS = 10


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _bring_up(cluster: LocalCluster, title: str) -> None:
    """Start the control plane, then NODES real nodes; print how long each took."""
    control_plane = _timed(cluster.up)
    nodes = _timed(lambda: cluster.start_local_nodes(NODES))
    print(
        f"{title}: control plane {control_plane:.1f} s, then {NODES} real nodes Ready {nodes:.1f} s"
    )


def _import_per_node(nodes: RealNodes, names: list[str]) -> None:
    """Import each image into each node in turn, timed (the images are built first)."""
    images = [nodes.builder.ensure(name) for name in names]
    for node in nodes.existing():
        for image in images:
            seconds = _timed(lambda: node.import_image(image.ref, image.archive))  # noqa: B023
            size = image.archive.stat().st_size / 2**20
            where = f"{image.name:<9} ({size:5.0f} MiB) into {node.naming.name}"
            print(f"  import {where}: {seconds:5.1f} s")
        print(f"  {node.naming.name} holds {_disk_mib(node.dirs.containerd_root)} MiB of images")


def _disk_mib(path: Path) -> int:
    return int(
        subprocess.run(
            ["du", "-sm", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


def _import_parallel(nodes: RealNodes, names: list[str]) -> None:
    """Import the images into every node at once, timed (the images are built first)."""
    for name in names:
        nodes.builder.ensure(name)
    seconds = _timed(lambda: nodes.ensure_images(names))
    print(f"  import {', '.join(names)} into {NODES} nodes in parallel: {seconds:5.1f} s")
    for node in nodes.existing():
        print(f"  {node.naming.name} holds {_disk_mib(node.dirs.containerd_root)} MiB of images")


def _pod(name: str, image: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", "import time; time.sleep(3600)"],
    }
    spec = {
        "nodeSelector": {NODE_POOL_LABEL: LOCAL_POOL},
        "containers": [container],
        "terminationGracePeriodSeconds": 1,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _pods_ready(cluster: LocalCluster, names: list[str], image: str) -> float:
    """Create the pods at once; seconds until every one is Ready."""
    items = [_pod(name, image) for name in names]
    pods = {"apiVersion": "v1", "kind": "List", "items": items}
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pods))
    targets = [f"pod/{name}" for name in names]
    cluster.kubectl("wait", "--for=condition=Ready", *targets, "--timeout=180s")
    return time.monotonic() - started


def _node_memory_mib(cluster: LocalCluster, node: RealNode) -> dict[str, float]:
    run_dir = cluster.layout.run_dir
    found = {}
    for name, binary in ((node.kubelet_name, "kubelet"), (node.containerd_name, "containerd")):
        pid = processes.running_pid(run_dir, name, binary)
        found[binary] = processes.resident_memory_bytes(pid) / 2**20 if pid else 0.0
    shims = [processes.resident_memory_bytes(pid) for pid in node.shim_pids()]
    found[f"{len(shims)} shims"] = sum(shims) / 2**20
    return found


def _print_memory(cluster: LocalCluster, nodes: RealNodes, title: str) -> None:
    for node in nodes.existing():
        memory = _node_memory_mib(cluster, node)
        parts = ", ".join(f"{name} {mib:.0f}" for name, mib in memory.items())
        print(f"  {title} {node.naming.name}: {sum(memory.values()):.0f} MiB ({parts})")


def _measure_pods(cluster: LocalCluster, nodes: RealNodes) -> None:
    image = nodes.ensure_images(["base"])[0].ref
    for attempt in range(3):
        seconds = _pods_ready(cluster, [f"single-{attempt}"], image)
        print(f"  one pod, create to Ready:            {seconds:.2f} s")
    names = [f"parallel-{index}" for index in range(PARALLEL_PODS)]
    seconds = _pods_ready(cluster, names, image)
    print(f"  {PARALLEL_PODS} pods at once, create to all Ready: {seconds:.2f} s")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m bench.realnodes")
    parser.add_argument("--images", default="user,trainer,operator")
    parser.add_argument(
        "--parallel", action="store_true", help="import into the nodes at once, not node by node"
    )
    args = parser.parse_args()
    layout = Layout(REPO_ROOT / ".cluster-bench-realnodes", cached_bin_dir(), BENCH_PORT_BASE)
    cluster = LocalCluster(layout, provisioner=False)
    cluster.destroy()
    try:
        _bring_up(cluster, "cold")
        nodes = open_real_nodes(layout)
        _print_memory(cluster, nodes, "memory, no pods,")
        names = args.images.split(",") if args.images else []
        (_import_parallel if args.parallel else _import_per_node)(nodes, names)
        _measure_pods(cluster, nodes)
        _print_memory(cluster, nodes, f"memory, {(3 + PARALLEL_PODS) / NODES:.1f} pods a node,")
        down = _timed(cluster.down)
        print(f"down with {3 + PARALLEL_PODS} pods running: {down:.1f} s")
        _bring_up(cluster, "warm")
        print(
            f"  (nodes {', '.join(local_node_names(NODES))}; their images kept from the cold run)"
        )
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
