"""The LightningModule that trains any :class:`~graphdyn.simulator.LearnedSimulator`.

Losses are the simulator's (MSE on the model's target). Validation also reports the MSE of
the next position, which is comparable across models that learn different targets.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from graphdyn.data.windows import Batch
from graphdyn.simulator import LearnedSimulator


class DynamicsModule(pl.LightningModule):
    """Trains ``simulator``; ``meta`` (config, data description) travels into every checkpoint."""

    def __init__(self, simulator: LearnedSimulator, lr: float, weight_decay: float = 0.0, optimizer: str = "adam",
                 meta: dict[str, Any] | None = None, lr_schedule: str = "none", min_lr: float = 0.0):
        super().__init__()
        self.lr_schedule = lr_schedule
        self.min_lr = min_lr
        self.simulator = simulator
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer_name = optimizer
        self.meta = meta or {}
        self._trainable = any(p.requires_grad for p in simulator.parameters())
        if not self._trainable:
            self.automatic_optimization = False

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        loss = self.simulator.loss(batch)
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=batch.batch_size)
        return loss if self._trainable else None

    def _eval_step(self, batch: Batch, prefix: str) -> None:
        loss = self.simulator.loss(batch)
        x_next, _ = self.simulator.step(batch)
        pos = torch.mean((x_next - batch.target_x) ** 2)
        self.log(f"{prefix}_loss", loss, on_step=False, on_epoch=True, batch_size=batch.batch_size, prog_bar=prefix == "val")
        self.log(f"{prefix}_pos_mse", pos, on_step=False, on_epoch=True, batch_size=batch.batch_size)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        if not self._trainable:
            return None
        cls = torch.optim.AdamW if self.optimizer_name == "adamw" else torch.optim.Adam
        opt = cls(self.simulator.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1), eta_min=self.min_lr)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if self.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3, min_lr=self.min_lr)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch",
                                                       "frequency": self.trainer.check_val_every_n_epoch}}
        return opt

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["graphdyn"] = self.meta
