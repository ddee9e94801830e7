"""The LightningModule that trains any :class:`~graphdyn.simulator.LearnedSimulator`.

Losses are the simulator's (MSE on the model's target). Validation also reports the MSE of
the next position, which is comparable across models that learn different targets.

Training windows may get noise on their observed frames (``noise``, a
:class:`~graphdyn.training.config.NoiseConfig`) and a loss over several strides of the model's
own rollout (``unroll``, an :class:`~graphdyn.training.config.UnrollConfig`); the simulator does
both (:meth:`~graphdyn.simulator.LearnedSimulator.add_noise`,
:meth:`~graphdyn.simulator.LearnedSimulator.loss`). ``train_loss`` is that training loss;
validation and test losses are always the clean one-stride loss.

A training loss that is NaN or infinite raises :class:`Diverged` before the optimizer step,
so the weights never take a non-finite update (:func:`graphdyn.training.run.fit` catches it,
keeps the best checkpoint and records the divergence). The shuffle order of every epoch is
set from the trainer's epoch (:meth:`graphdyn.data.windows.WindowLoader.set_epoch`), so it does
not depend on how many epochs ran in this process.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from graphdyn.data.windows import Batch
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.config import NoiseConfig, UnrollConfig
from graphdyn.training.optim import make_adam


class Diverged(Exception):
    """A non-finite training loss. ``epoch`` and ``step`` count from 1 (``step``: the optimizer
    step the loss would have fed, over the whole run); ``value`` is ``"nan"`` or ``"inf"``."""

    def __init__(self, epoch: int, step: int, value: str):
        super().__init__(f"loss is {value} at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
        self.value = value


class DynamicsModule(pl.LightningModule):
    """Trains ``simulator``; ``meta`` (config, data description) travels into every checkpoint.

    ``noise`` and ``unroll`` (default: none, one stride) shape the training loss only. A loss
    over ``unroll.strides = K`` strides needs training batches with ``K`` future frames
    (``WindowDataset.with_horizon(K)``; :func:`graphdyn.training.run.prepare` builds them).
    """

    def __init__(self, simulator: LearnedSimulator, lr: float, weight_decay: float = 0.0, optimizer: str = "adam",
                 meta: dict[str, Any] | None = None, lr_schedule: str = "none", min_lr: float = 0.0,
                 noise: NoiseConfig | None = None, unroll: UnrollConfig | None = None):
        super().__init__()
        self.noise = noise or NoiseConfig()
        self.unroll = unroll or UnrollConfig()
        self.lr_schedule = lr_schedule
        self.min_lr = min_lr
        self.simulator = simulator
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer_name = optimizer
        self.meta = meta or {}
        self._trainable = any(p.requires_grad for p in simulator.parameters())
        self.samples_seen = 0  # training samples over the whole fit (for throughput)
        # Lightning's manual optimization: one optimizer step per batch, written out in
        # training_step. Its automatic loop (closure, hooks around every call) costs about 0.2 ms
        # per step on a CPU, a tenth of a full-batch step of the notebook's model
        # (benchmarks/spring_training.py). Schedulers are stepped in on_train_epoch_end.
        self.automatic_optimization = False

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        loader = self.trainer.train_dataloader
        if hasattr(loader, "set_epoch"):  # the epoch's shuffle order from (seed, epoch) alone
            loader.set_epoch(self.current_epoch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        loss = self.training_loss(batch)
        # One host sync per step (about a microsecond on a CPU): a non-finite loss stops the run
        # before its gradient reaches the weights.
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(self.current_epoch + 1, self.global_step + 1, "nan" if math.isnan(value) else "inf")
        # Summed here and logged once per epoch: a per-step self.log costs about as much as
        # a whole optimizer step of a small model on a CPU.
        self._loss_sum.add_(loss.detach(), alpha=batch.batch_size)
        self._loss_count += batch.batch_size
        self.samples_seen += batch.batch_size
        if self._trainable:
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        return None

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The loss a training step minimizes: the simulator's, on the noisy window when
        ``noise.std > 0``, over ``unroll.strides`` strides."""
        if self.noise.std > 0:
            batch = self.simulator.add_noise(batch, self.noise.std, self.noise.kind, self.noise.correction)
        return self.simulator.loss(batch, self.unroll.strides, self.unroll.mode, self.unroll.weights)

    def on_train_epoch_end(self) -> None:
        """The epoch's mean training loss, to the loggers and ``trainer.callback_metrics``.

        Written to the loggers directly rather than through ``self.log``: Lightning's result
        collection costs about a millisecond per epoch on a CPU, as much as a whole full-batch
        step of a small model (``benchmarks/spring_training.py``). Under ``torch.distributed``
        the sums are all-reduced first, as ``self.log(..., sync_dist=True)`` would.
        """
        self._step_lr_schedule()
        if not self._loss_count:
            return
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            total = torch.stack([self._loss_sum.detach(), torch.tensor(float(self._loss_count), device=self._loss_sum.device)])
            torch.distributed.all_reduce(total)
            value = float(total[0] / total[1])
        else:  # one process: no tensor ops (tens of microseconds, a few percent of a small full-batch epoch)
            value = self._loss_sum.item() / self._loss_count
        self.trainer.callback_metrics["train_loss"] = torch.tensor(value)
        for logger in self.loggers:
            logger.log_metrics({"train_loss": value, "epoch": self.current_epoch}, step=self.global_step)

    def _step_lr_schedule(self) -> None:
        """Once per epoch, as Lightning's automatic loop would: cosine every epoch; plateau on the
        epochs that validated, with that epoch's ``val_loss`` (validation runs before this hook)."""
        sched = self.lr_schedulers() if self._trainable else None
        if sched is None:
            return
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            val = self.trainer.callback_metrics.get("val_loss")
            every = self.trainer.check_val_every_n_epoch or 1
            if val is not None and (self.current_epoch + 1) % every == 0:
                sched.step(val)
        else:
            sched.step()

    def _eval_step(self, batch: Batch, prefix: str) -> None:
        loss = self.simulator.loss(batch)
        x_next, _ = self.simulator.step(batch)
        pos = torch.mean((x_next - batch.target_x) ** 2)
        self.log(f"{prefix}_loss", loss, on_step=False, on_epoch=True, batch_size=batch.batch_size, prog_bar=prefix == "val", sync_dist=True)
        self.log(f"{prefix}_pos_mse", pos, on_step=False, on_epoch=True, batch_size=batch.batch_size, sync_dist=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        if not self._trainable:
            return None
        # torch.optim.Adam / AdamW, fused where PyTorch supports it (training/optim.py)
        opt = make_adam(self.simulator.parameters(), self.optimizer_name, lr=self.lr, weight_decay=self.weight_decay)
        # stepped by _step_lr_schedule (manual optimization)
        if self.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1), eta_min=self.min_lr)
            return {"optimizer": opt, "lr_scheduler": sched}
        if self.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3, min_lr=self.min_lr)
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["graphdyn"] = self.meta
