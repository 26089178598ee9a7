"""Ringleader's client library: what a training script tells the operator, and learns from it.

Standard library only, so any training program can use it (torch's helpers for exact resume are
in ringleader_client.resume, the framework callbacks in ringleader_client.huggingface and
ringleader_client.lightning). The built-in trainer reports through the same code.

    import ringleader_client as ringleader

    for step in range(start, total_steps):
        loss = train_one_step()
        ringleader.report(step + 1, loss=loss, samples=global_batch)
        if (step + 1) % 100 == 0 or ringleader.stop_requested():
            path = save_checkpoint(step + 1)          # on the job's checkpoint volume
            ringleader.checkpoint_saved(step + 1, path)
        if ringleader.stop_requested():               # SIGTERM: preemption, scale-down, delete
            break                                     # and exit 0

Then `kubectl get dtj` shows STEP, LOSS and LAST-CKPT, hang detection watches the step, and the
job's status and metrics follow the script as they follow the built-in trainer.
"""

from __future__ import annotations

from typing import Any

from ringleader_client import session
from ringleader_client.contract import TrainerState
from ringleader_client.reporting import bounded_metrics

__all__ = ["TrainerState", "checkpoint_saved", "finishing", "report", "stop_requested"]


def report(
    step: int,
    loss: float | None = None,
    samples: int = 0,
    metrics: dict[str, Any] | None = None,
    epoch: int | None = None,
) -> None:
    """A training step is done: `step` steps so far, its loss, the samples the whole group
    trained in it, and any figures of your own (numbers by name, exported on /metrics).

    Every rank may call it; global rank 0 writes the job's progress (at most once a second),
    local rank 0 of each pod its heartbeat. Never raises for a failed write.
    """
    extra = {"metrics": bounded_metrics(metrics)} if metrics else None
    try:
        session.reporter().report(step, loss=loss, samples=samples, epoch=epoch, extra=extra)
    except OSError as error:
        session.warn_once("write progress", error)


def checkpoint_saved(step: int, path: str) -> None:
    """A checkpoint of `step` is committed at `path`: status.checkpoint and LAST-CKPT show it."""
    try:
        session.reporter().checkpoint_saved(step, path)
    except OSError as error:
        session.warn_once("write progress", error)


def finishing(step: int) -> None:
    """The last step is done: what follows (a final save, an evaluation) is no hang."""
    try:
        session.reporter().announce(step, TrainerState.FINISHING)
    except OSError as error:
        session.warn_once("write progress", error)


def stop_requested() -> bool:
    """True once the pod got SIGTERM (preemption, scale-down, deletion): save a checkpoint and
    exit 0. The first call (from the main thread) starts listening: SIGTERM no longer ends the
    process at once, so call it at every step."""
    return session.stop_request().is_set()
