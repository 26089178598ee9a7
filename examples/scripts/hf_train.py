"""A Hugging Face Trainer script with Ringleader's callback, run by torchrun in every worker: a
tiny regression (no download), its checkpoints in the job's volume, resumed from the newest.
The callback (ringleader_client.huggingface) puts steps, loss and checkpoints in the job's status
and turns SIGTERM into a checkpoint; the two lines that use it are marked."""

from __future__ import annotations

import os
import time

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from ringleader_client.huggingface import RingleaderCallback, last_checkpoint  # Ringleader

OUTPUT = os.path.join(os.environ.get("RINGLEADER_CHECKPOINT_DIR", "/checkpoints"), "hf")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class Pace(TrainerCallback):
    """Slower steps (STEP_SECONDS), to watch a run go by."""

    def on_step_end(self, *args: object, **kwargs: object) -> None:
        time.sleep(float(os.environ.get("STEP_SECONDS", "0")))


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(2048, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    args = TrainingArguments(
        output_dir=OUTPUT,
        max_steps=int(os.environ.get("TRAIN_STEPS", "120")),
        save_steps=20,
        save_total_limit=3,
        logging_steps=5,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    callbacks = [RingleaderCallback(), Pace()]  # Ringleader
    trainer = Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=callbacks)
    resumed = last_checkpoint(OUTPUT)
    print(f"resuming from {resumed}", flush=True)
    trainer.train(resume_from_checkpoint=resumed)
    print(f"done at {trainer.state.global_step}", flush=True)


if __name__ == "__main__":
    main()
