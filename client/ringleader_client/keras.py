"""Keras under TensorFlow (`tf.keras`, tf-keras) → Ringleader: steps, loss, epochs and backups in
the job's status, and SIGTERM turned into a prompt end of the worker.

    from ringleader_client.keras import BackupAndRestore, RingleaderCallback

    with strategy.scope():                       # tf.distribute.MultiWorkerMirroredStrategy()
        model = build_and_compile()
    model.fit(data, epochs=5, callbacks=[
        BackupAndRestore(backup_dir="/checkpoints/backup"),   # on the job's volume
        RingleaderCallback(global_batch_size=64),
    ])

A TensorFlow group restarts whole (spec.framework: tensorflow): BackupAndRestore on the job's
checkpoint volume is what makes the restarted group resume from its last epoch, not from scratch.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import tensorflow as tf

import ringleader_client as ringleader

# What a worker stopped by SIGTERM exits with: the shell's 128 + signal, as if SIGTERM had ended it.
EXIT_TERMINATED = 128 + signal.SIGTERM


def running_figures(model: Any, logs: dict[str, Any] | None) -> dict[str, float]:
    """The epoch's running loss and metrics as Keras shows them. Read from the model, not from
    the batch's logs: under MultiWorkerMirroredStrategy tf-keras sums those over the replicas
    (two workers: an accuracy of 1.8)."""
    read = getattr(model, "get_metrics_result", None)
    values = read() if callable(read) else (logs or {})
    out = {}
    for name, value in values.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def steps_done(epoch: int, steps_per_epoch: int | None, batch: int) -> int:
    """Steps trained since the start after `batch` (0-based) of `epoch` (0-based): the step the
    job shows, counted across a restart that resumed at a later epoch."""
    return epoch * (steps_per_epoch or 0) + batch + 1


class RingleaderCallback(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """Reports every batch (step, loss, epoch, the logged figures); on SIGTERM ends the worker
    at the batch's end. Mid-epoch nothing can be saved without the whole group, and its peers
    are being stopped too: the restarted group resumes from the last backup."""

    def __init__(self, global_batch_size: int = 0) -> None:
        super().__init__()
        self.global_batch_size = global_batch_size
        self.epoch = 0
        self.step = 0
        ringleader.stop_requested()  # start listening for SIGTERM now, from the main thread

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch  # after a restart, the epoch BackupAndRestore resumed at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step = steps_done(self.epoch, self.params.get("steps"), batch)
        figures = running_figures(self.model, logs)
        ringleader.report(
            self.step,
            loss=figures.pop("loss", None),
            samples=self.global_batch_size,
            metrics=figures,
            epoch=self.epoch,
        )
        if ringleader.stop_requested():
            print(f"SIGTERM: worker stops at step {self.step}", file=sys.stderr, flush=True)
            os._exit(EXIT_TERMINATED)  # TensorFlow's threads would keep a normal exit waiting

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        ringleader.finishing(self.step)


class BackupAndRestore(tf.keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """Keras's BackupAndRestore, which also names each backup it writes as the job's newest
    checkpoint (LAST-CKPT). Per epoch only: a backup every N batches would resume mid-epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        step = steps_done(epoch, self.params.get("steps"), (self.params.get("steps") or 1) - 1)
        ringleader.checkpoint_saved(step, self.backup_dir)
