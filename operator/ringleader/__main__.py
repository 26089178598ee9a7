"""`python -m ringleader`: run the operator (in the foreground) against the current kubeconfig."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import random
import signal
import sys

# kopf imports the `kubernetes` package's models whenever that is installed (to accept them as
# owners): 42 MiB of memory the operator, which sends plain dicts, never uses. It is installed
# beside the operator in the development environment; this process never imports it.
sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]

import kopf  # noqa: E402

from ringleader import handlers  # noqa: E402  (its kopf registrations, and a log filter)


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
        "--progress-interval",
        type=float,
        default=5.0,
        help="seconds between polls of the trainers' progress (0 disables)",
    )
    parser.add_argument(
        "--progress-writes-per-second",
        type=float,
        default=20.0,
        help="status writes a second, all jobs together, that only move a step on: past it "
        "each job's step is mirrored less often than polled (0: every poll)",
    )
    parser.add_argument(
        "--peering",
        default=None,
        help="kopf peering name, so only one of several replicas is active (default: standalone)",
    )
    parser.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help="peering priority: the highest live one is active, lower ones wait; 'random' lets "
        "identical replicas (a Deployment) differ, so exactly one of them is active",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        metavar="SECONDS",
        help="how long a replica's peering record lives without renewal: a standby takes over "
        "this long after the active replica died (renewed about every half of it)",
    )
    parser.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz (default: off)",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=0,
        help="serve the validating admission webhook (HTTPS) on this port; 0: off (the default)",
    )
    parser.add_argument("--webhook-addr", default="0.0.0.0", help="address the webhook listens on")
    parser.add_argument(
        "--webhook-cert-dir",
        default="/tmp/k8s-webhook-server/serving-certs",
        help="directory with the webhook's tls.crt and tls.key",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def _priority(value: str) -> int:
    # kopf pauses *every* peer when two share a priority, so replicas must not all use 0.
    if value == "random":
        return random.randint(1, 2**31 - 1)
    return int(value)


def main(argv: list[str] | None = None) -> None:
    """Run the operator until interrupted."""
    args = parse_args(argv)
    # SIGUSR1 prints every thread's stack: where a stuck operator waits, without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    # kopf's own root handler formats every logger, ours too (a second handler doubled each line).
    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # kopf says "Handler ... succeeded" for every watch event: hundreds of lines a minute
        # that bury the operator's own (its decisions, as events). Its warnings still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.webhook_port:
        handlers.register_admission_webhook()
    memo = kopf.Memo(
        workers=args.workers,
        metrics_port=args.metrics_port,
        progress_interval=args.progress_interval,
        progress_writes_per_second=args.progress_writes_per_second,
        peering_lifetime=args.peering_lifetime,
        peering=args.peering is not None,
        namespaces=args.namespace or None,
        webhook_port=args.webhook_port,
        webhook_addr=args.webhook_addr,
        webhook_cert_dir=args.webhook_cert_dir,
    )
    kopf.run(
        registry=kopf.get_default_registry(),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        liveness_endpoint=args.liveness,
        memo=memo,
    )


if __name__ == "__main__":
    main()
