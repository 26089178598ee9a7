"""A PyTorch Lightning run with Ringleader's callback: a tiny regression, no download.

argv: max_steps [pace_seconds]"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ringleader_client.lightning import RingleaderCallback, last_checkpoint


class Tiny(pl.LightningModule):
    def __init__(self, pace: float) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.pace = pace

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        time.sleep(self.pace)
        return nn.functional.mse_loss(self.linear(x).squeeze(-1), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    max_steps = int(sys.argv[1])
    pace = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    data = DataLoader(TensorDataset(x, y), batch_size=8)
    callback = RingleaderCallback(every_n_steps=10, keep=2)
    trainer = pl.Trainer(
        max_steps=max_steps,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    resumed = last_checkpoint(callback.dirpath)
    print(f"resuming from {resumed}", flush=True)
    trainer.fit(Tiny(pace), data, ckpt_path=resumed)
    print(f"done at {trainer.global_step}", flush=True)


if __name__ == "__main__":
    main()
