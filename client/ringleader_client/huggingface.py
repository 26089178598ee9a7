"""Hugging Face `transformers.Trainer` → Ringleader: steps, loss and checkpoints in the job's
status, and SIGTERM turned into a checkpoint and a clean stop.

    from ringleader_client.huggingface import RingleaderCallback, last_checkpoint

    args = TrainingArguments(output_dir="/checkpoints/hf", save_steps=50, ...)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[RingleaderCallback()])
    trainer.train(resume_from_checkpoint=last_checkpoint(args.output_dir))

Put output_dir on the job's checkpoint volume (spec.checkpoint.mountPath, /checkpoints by
default) so that a replaced pod resumes from the newest checkpoint-<step> there.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

import ringleader_client as ringleader
from ringleader_client import contract
from ringleader_client.resume import agree_to_stop


def last_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint-<step> directory in output_dir, to resume from; None for a start."""
    if not os.path.isdir(output_dir):
        return None
    found = get_last_checkpoint(output_dir)  # type: ignore[no-untyped-call]
    return str(found) if found else None


class RingleaderCallback(TrainerCallback):
    """Reports every step (with the last logged loss), every saved checkpoint, and stops the
    whole group at one step, after a save, once any pod got SIGTERM: the pod that got it ends,
    the others exit 75 to be restarted into the group that re-forms (under torchrun)."""

    def __init__(self) -> None:
        self.loss: float | None = None
        self.metrics: dict[str, float] = {}
        self.rejoin = False  # stopped for another pod's SIGTERM: restart into the new group

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Keep the loss and the other figures the Trainer logs."""
        logs = logs or {}
        if isinstance(logs.get("loss"), int | float):
            self.loss = float(logs["loss"])
        self.metrics = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        """Report the step; on a stop request anywhere, save and stop everywhere."""
        samples = args.per_device_train_batch_size * args.gradient_accumulation_steps
        ringleader.report(
            state.global_step,
            loss=self.loss,
            samples=samples * args.world_size,
            metrics=self.metrics,
            epoch=int(state.epoch or 0),
        )
        stop_here = ringleader.stop_requested()
        if agree_to_stop(stop_here):
            control.should_save = True
            control.should_training_stop = True
            self.rejoin = not stop_here
        return control

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """A checkpoint-<step> directory is written: name it as the newest."""
        path = os.path.join(args.output_dir or "", f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        ringleader.checkpoint_saved(state.global_step, path)
        if self.rejoin:
            # Training is not over: this worker stopped so that the group could re-form (a pod
            # left). Exiting 75 has its torchrun agent start it again, from this checkpoint.
            sys.exit(contract.EXIT_REJOIN)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Training is over: a final save or evaluation that follows is no hang."""
        ringleader.finishing(state.global_step)
