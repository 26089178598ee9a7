"""PyTorch Lightning → Ringleader: steps, loss and checkpoints in the job's status, and SIGTERM
turned into a checkpoint and a clean stop.

    from ringleader_client.lightning import RingleaderCallback, last_checkpoint

    callback = RingleaderCallback(every_n_steps=50)      # saves in /checkpoints/lightning
    trainer = L.Trainer(callbacks=[callback], ...)
    trainer.fit(model, data, ckpt_path=last_checkpoint(callback.dirpath))

The callback saves the checkpoints itself (Lightning's own format, all of the trainer's state),
commits each by rename, keeps the newest `keep`, and reports each to the operator.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

import ringleader_client as ringleader
from ringleader_client import contract
from ringleader_client.resume import agree_to_stop

STEP_FILE = re.compile(r"^step-(\d{9})\.ckpt$")


def default_dirpath() -> str:
    """Where checkpoints go: a directory on the job's checkpoint volume."""
    return str(Path(contract.read_launch_env().checkpoint_dir) / "lightning")


def last_checkpoint(dirpath: str | None = None) -> str | None:
    """The newest committed step-<n>.ckpt in dirpath, to resume from; None for a start."""
    found = sorted(_committed(Path(dirpath or default_dirpath())))
    return str(found[-1][1]) if found else None


def _committed(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    matches = ((STEP_FILE.match(p.name), p) for p in directory.iterdir())
    return [(int(m.group(1)), p) for m, p in matches if m]


class RingleaderCallback(pl.Callback):
    """Reports every training batch's step and loss, saves every `every_n_steps` and on a stop
    request, and stops the whole group at one step once any pod got SIGTERM: the pod that got
    it ends, the others exit 75 to be restarted into the group that re-forms (under torchrun)."""

    def __init__(
        self, dirpath: str | None = None, every_n_steps: int | None = None, keep: int = 3
    ) -> None:
        self.dirpath = dirpath or default_dirpath()
        self.every_n_steps, self.keep = every_n_steps, keep

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        """Report the step; save when due; on a stop request anywhere, save and stop."""
        step = trainer.global_step
        ringleader.report(step, loss=_loss_of(outputs), samples=_samples_of(batch, trainer))
        stop_here = ringleader.stop_requested()
        stopping = agree_to_stop(stop_here)
        due = bool(self.every_n_steps) and step % int(self.every_n_steps or 1) == 0
        if stopping or due:
            self.save(trainer, step)
        if stopping and not stop_here:
            # Stopped so that the group can re-form (a pod left): exiting 75 has this worker's
            # torchrun agent start it again, from the checkpoint just saved.
            sys.exit(contract.EXIT_REJOIN)
        if stopping:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Training is over: what follows is no hang."""
        ringleader.finishing(trainer.global_step)

    def save(self, trainer: pl.Trainer, step: int) -> None:
        """Save the trainer's state as step-<n>.ckpt: written under a temporary name, committed
        by rename, older ones beyond `keep` removed (rank 0), then reported."""
        directory = Path(self.dirpath)
        final = directory / f"step-{step:09d}.ckpt"
        temp = directory / f".tmp-{final.name}"
        if trainer.is_global_zero:
            directory.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("ringleader-save")
        trainer.save_checkpoint(str(temp))  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(temp, final)
            for _, old in sorted(_committed(directory))[: -self.keep]:
                old.unlink(missing_ok=True)
            ringleader.checkpoint_saved(step, str(final))
        trainer.strategy.barrier("ringleader-saved")


def _loss_of(outputs: Any) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    detach = getattr(loss, "detach", None)
    return float(detach()) if detach is not None else None


def _samples_of(batch: Any, trainer: pl.Trainer) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    per_rank = int(first.shape[0]) if hasattr(first, "shape") and first.shape else 0
    return per_rank * trainer.world_size
