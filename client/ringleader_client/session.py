"""The process-wide reporter behind ringleader_client.report() and friends, set up from the env
the operator gives every worker (and torchrun's RANK, LOCAL_RANK, WORLD_SIZE per process).

Reporting never stops training: a write that fails is said once on stderr and skipped. Local
rank 0 of each pod serves the pod's endpoint (unless another process of the pod, such as the
built-in trainer's launcher, already does) and, at exit, leaves the last progress document as
the container's termination message, where the operator reads it after the pod is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from ringleader_client import contract, termination
from ringleader_client.endpoint import serve_progress
from ringleader_client.reporting import Place, ProgressReporter
from ringleader_client.stopping import StopRequest


class _Session:
    """What one process has set up, once: its reporter (and endpoint) and its stop request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reporter: ProgressReporter | None = None
        self.stop: StopRequest | None = None
        self.warned = False


_session = _Session()


def place_from_env(env: Mapping[str, str] | None = None) -> Place:
    """This process's place in the job, from the operator's env contract and torchrun's."""
    e = dict(os.environ if env is None else env)
    launch = contract.read_launch_env(e)
    return Place(
        rank=int(e.get(contract.RANK, "0")),
        local_rank=int(e.get(contract.AGENT_LOCAL_RANK, "0")),
        world_size=int(e.get(contract.WORLD_SIZE_NAME, "1")),
        pod_name=launch.pod_name,
        job_name=launch.job_name,
        root=Path(launch.checkpoint_dir),
    )


def reporter() -> ProgressReporter:
    """The process's reporter, made (and the pod's endpoint started) on first use."""
    with _session.lock:
        if _session.reporter is None:
            place = place_from_env()
            _session.reporter = ProgressReporter(place)
            if place.local_rank == 0:
                _serve_endpoint(place)
            atexit.register(_leave, _session.reporter)
        return _session.reporter


def _leave(reporter: ProgressReporter) -> None:
    """At exit: the last step reported written, and (local rank 0) the container's last words."""
    with contextlib.suppress(OSError):
        reporter.flush()
    if reporter.place.local_rank == 0:
        termination.write_termination_message(reporter.place.root)


def _serve_endpoint(place: Place) -> None:
    port = contract.read_launch_env().progress_port
    # A port taken means another process of this pod (the built-in trainer's launcher, or an
    # earlier incarnation of this one) serves the same files.
    with contextlib.suppress(OSError):
        serve_progress(place.root, place.pod_name, port)


def warn_once(action: str, error: OSError) -> None:
    """Say once, on stderr, that reporting failed (training goes on)."""
    if not _session.warned:
        _session.warned = True
        print(f"ringleader_client: cannot {action} ({error}); training goes on", file=sys.stderr)


def stop_request() -> StopRequest:
    """The process's stop request, listening to SIGTERM from the first call on (main thread)."""
    with _session.lock:
        if _session.stop is None:
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError("call stop_requested() first from the main thread")
            _session.stop = StopRequest()
            _session.stop.handle_sigterm()
        return _session.stop
