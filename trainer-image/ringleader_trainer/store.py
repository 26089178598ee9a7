"""Serve the job's rendezvous store (a TCPStore server) until SIGTERM: the rendezvous pod's entry.

Usage: python -m ringleader_trainer.store [--port PORT]
The port defaults to the one in PET_RDZV_ENDPOINT, else 29400. Agents connect with is_host=false.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from datetime import timedelta

from torch.distributed import TCPStore  # type: ignore[attr-defined]

from ringleader_trainer import contract

log = logging.getLogger("ringleader.store")


def default_port(env: dict[str, str]) -> int:
    """Return the port of PET_RDZV_ENDPOINT, or the standard rendezvous port."""
    endpoint = env.get(contract.PET_RDZV_ENDPOINT, "")
    _, sep, port = endpoint.rpartition(":")
    return int(port) if sep and port.isdigit() else contract.DEFAULT_RDZV_PORT


def serve_store(port: int, stop: threading.Event) -> None:
    """Hold a TCPStore server on port until stop is set."""
    # wait_for_workers=False: agents come and go; the store must never wait for a fixed count.
    store = TCPStore(
        "0.0.0.0",
        port,
        is_master=True,
        wait_for_workers=False,
        timeout=timedelta(hours=24),
        use_libuv=True,
    )
    print(f"ringleader: rendezvous store listening on port {store.port}", flush=True)
    stop.wait()
    print("ringleader: rendezvous store stopping on SIGTERM", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve the store until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="ringleader_trainer.store")
    parser.add_argument("--port", type=int, default=default_port(dict(os.environ)))
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve_store(args.port, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
