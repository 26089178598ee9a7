"""How the elastic agent starts a worker: forked from a server that has already imported torch.

Importing torch, torch.distributed.checkpoint and a workload's libraries takes 2-7 s on a busy
node, and the agent starts every worker again on each in-place recovery. So workers are not
exec'd as new interpreters: a multiprocessing forkserver, started once per pod and preloaded
with the trainer's modules, forks each one in milliseconds. The forkserver is a fresh process
that never touches CUDA, so its children may still initialize it (plain fork could not).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys

# The trainer's own heavy imports; ringleader_trainer.worker pulls in torch and DCP.
PRELOAD = ("ringleader_trainer.worker",)
# Libraries a built-in workload imports only when it is built.
WORKLOAD_PRELOAD = {"digits": ("sklearn.datasets",)}


def preload_modules(workload: str) -> list[str]:
    """Modules the forkserver imports before forking workers for this workload.

    A user's `module:function` is not preloaded: its import may start threads or initialize
    CUDA, which a fork must not inherit.
    """
    return [*PRELOAD, *WORKLOAD_PRELOAD.get(workload, ())]


def start_forkserver(workload: str) -> None:
    """Start the preloading forkserver now: its imports overlap the agent's and the rendezvous."""
    multiprocessing.set_forkserver_preload(preload_modules(workload))
    multiprocessing.forkserver.ensure_running()


def run_worker(argv: list[str]) -> None:
    """The agent's entry point in each worker process: train, then exit with the code."""
    from ringleader_trainer.worker import main  # noqa: PLC0415 - preloaded by the forkserver

    code = main(argv)
    sys.exit(code)
