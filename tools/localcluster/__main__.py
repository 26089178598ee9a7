"""`python -m tools.localcluster up|down|status`: the local cluster behind `make cluster-up`."""

from __future__ import annotations

import argparse
import sys
import time

from . import schedulers
from .cluster import ClusterError, LocalCluster
from .layout import default_layout


def _print_usage_line(cluster: LocalCluster) -> None:
    layout = cluster.layout
    print("Local cluster is up. To use it from this shell:")
    print(f"  export KUBECONFIG={layout.kubeconfig} PATH={layout.tools_dir}:$PATH")


def _print_status(cluster: LocalCluster) -> int:
    states = cluster.status()
    for state in states:
        health = "healthy" if state.healthy else ("unhealthy" if state.pid else "stopped")
        pid = state.pid or "-"
        print(f"{state.name:<24} {health:<10} pid={pid!s:<8} rss={state.rss_bytes / 2**20:.0f}MiB")
    total = sum(state.rss_bytes for state in states)
    print(f"{'total':<24} {'':<10} {'':<12} rss={total / 2**20:.0f}MiB")
    return 0 if all(state.healthy for state in states) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster")
    parser.add_argument("command", choices=["up", "down", "status", "destroy", "images"])
    parser.add_argument(
        "images", nargs="*", help="`images`: build these and import them into the real nodes"
    )
    parser.add_argument(
        "--local-nodes",
        type=int,
        default=0,
        help="also run N real nodes: kubelet, containerd (root; `up` only)",
    )
    parser.add_argument(
        "--addons",
        default="",
        help="also start these schedulers (`up` only): " + ",".join(schedulers.NAMES),
    )
    args = parser.parse_args(argv)
    try:
        names = schedulers.parse_names(args.addons)
    except ValueError as error:
        parser.error(str(error))
    layout = default_layout(build=args.command == "up")
    cluster = LocalCluster(layout, local_nodes=args.local_nodes, scheduler_names=names)
    try:
        if args.command == "up":
            started = time.monotonic()
            cluster.up()
            print(f"Started in {time.monotonic() - started:.1f}s; logs in {cluster.layout.log_dir}")
            _print_usage_line(cluster)
        elif args.command == "down":
            stopped = cluster.down()
            print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "images":
            for image in cluster.import_images(args.images):
                print(f"{image.ref}  (in every real node)")
        elif args.command == "destroy":
            cluster.destroy()
            print(f"Removed {cluster.layout.root}")
        else:
            return _print_status(cluster)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
