"""A Hugging Face Trainer run with Ringleader's callback: a tiny regression, no download.

argv: output_dir max_steps [pace_seconds]"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from ringleader_client.huggingface import RingleaderCallback, last_checkpoint


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class Pace(TrainerCallback):
    """Slow steps so that a test can signal the run mid-way."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, *args: object, **kwargs: object) -> None:
        time.sleep(self.seconds)


def main() -> None:
    output_dir, max_steps = sys.argv[1], int(sys.argv[2])
    pace = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        save_steps=10,
        logging_steps=2,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    callbacks = [RingleaderCallback(), Pace(pace)]
    trainer = Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=callbacks)
    resumed = last_checkpoint(output_dir)
    print(f"resuming from {resumed}", flush=True)
    trainer.train(resume_from_checkpoint=resumed)
    print(f"done at {trainer.state.global_step}", flush=True)


if __name__ == "__main__":
    main()
