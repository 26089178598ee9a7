"""`python -m tools.nodeagent --kubeconfig PATH --state-dir DIR --node local-0 [--node ...]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .agent import Agent, Settings
from .config import DEFAULT_BRIDGE, DEFAULT_POD_CIDR, Network, StateDir


def parse_settings(argv: list[str] | None) -> Settings:
    """Command line → Settings."""
    parser = argparse.ArgumentParser(prog="python -m tools.nodeagent", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--node", action="append", required=True, dest="nodes")
    parser.add_argument("--bridge", default=DEFAULT_BRIDGE)
    parser.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR)
    parser.add_argument(
        "--unregister", action="store_true", help="delete the Node objects on clean shutdown"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Settings(
        kubeconfig=args.kubeconfig,
        state=StateDir(args.state_dir.resolve()),
        nodes=args.nodes,
        network=Network(args.bridge, args.pod_cidr),
        unregister=args.unregister,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT."""
    settings = parse_settings(argv)
    if os.geteuid() != 0:
        print("the local node agent needs root (network namespaces, mounts)", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Agent(settings, stop).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
