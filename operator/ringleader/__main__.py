"""`python -m ringleader`: run the operator (in the foreground) against the current kubeconfig."""

from __future__ import annotations

import argparse
import logging
import os

import kopf

from ringleader import handlers  # noqa: F401  (imported for its kopf registrations)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the operator."""
    parser = argparse.ArgumentParser(prog="python -m ringleader", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="0 disables /metrics")
    parser.add_argument("--workers", type=int, default=8, help="jobs reconciled concurrently")
    parser.add_argument(
        "--peering",
        default=None,
        help="kopf peering name, so only one of several replicas is active (default: standalone)",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the operator until interrupted."""
    args = parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kopf.configure(verbose=args.verbose)
    memo = kopf.Memo(workers=args.workers, metrics_port=args.metrics_port)
    kopf.run(
        registry=kopf.get_default_registry(),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        memo=memo,
    )


if __name__ == "__main__":
    main()
