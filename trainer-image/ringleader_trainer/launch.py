"""The worker pod's entry point: start the workers' forkserver, then torch's elastic agent.

Usage: python -m ringleader_trainer.launch [trainer options]   (see ringleader_trainer.options)
The agent (ringleader_trainer.agent) starts PET_NPROC_PER_NODE workers, restarts them in place,
and re-forms the group through the rendezvous when pods come and go. Workers are forked from a
server that imports torch and the workload once (ringleader_trainer.forkserver). It is started
here, before this process imports torch for the agent: the two imports overlap, and a pod that
replaces a failed one trains a second or more sooner.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ringleader_client import contract
from ringleader_client.stopping import PEER_LOST_FILE
from ringleader_trainer.forkserver import start_forkserver
from ringleader_trainer.options import parse_options


def prepare_worker_env() -> None:
    """Set what the workers inherit from the forkserver, which copies the env when it starts."""
    # Surviving agents must build a fresh bootstrap store when a new agent joins (DESIGN.md).
    os.environ[contract.DISABLE_SHARED_RDZV_STORE] = "1"
    # Where the agent flags a dead peer for its workers (stopping.py, peerwatch.py).
    os.environ[PEER_LOST_FILE] = str(
        Path(tempfile.gettempdir()) / f"ringleader-peer-lost-{os.getpid()}"
    )


def main(argv: list[str] | None = None) -> int:
    """Check the options, start the forkserver, then run the agent; return the pod's exit code."""
    args = sys.argv[1:] if argv is None else argv
    options = parse_options(args)  # fail here, once, rather than in every worker
    prepare_worker_env()
    start_forkserver(options.workload)
    from ringleader_trainer import agent  # noqa: PLC0415 - imports torch: after the forkserver

    return agent.main(args)


if __name__ == "__main__":
    raise SystemExit(main())
