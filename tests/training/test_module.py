"""DynamicsModule: manual optimization steps, learning-rate schedules, per-epoch train loss."""

import math

import pytorch_lightning as pl
import pytest
import torch
from pytorch_lightning.loggers import CSVLogger

from graphdyn.data.registry import Window, build_dataset
from graphdyn.data.windows import WindowLoader
from graphdyn.models import DataInfo, build_model
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.module import DynamicsModule
from graphdyn.training.run import _quiet_lightning
from graphdyn.viz.plots import read_metrics_csv


@pytest.fixture(scope="module")
def splits():
    return build_dataset("springs", {"n_train": 64, "n_val": 16, "n_test": 16}, Window(), 0)


def _simulator(splits):
    """A small acceleration model for the springs splits."""
    t = splits.train.traj
    info = DataInfo(dim=t.dim, channels=None, node_attr_dim=1, edge_attr_dim=0, T=1, n_nodes=t.n_nodes, has_velocities=True)
    return LearnedSimulator(build_model("gnn", {"target": "acceleration", "hidden": 8}, info))


def _fit(splits, tmp_path, epochs, **module_kw):
    _quiet_lightning()
    sim = _simulator(splits)
    module = DynamicsModule(sim, lr=0.01, **module_kw)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=CSVLogger(tmp_path, name="m"), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, check_val_every_n_epoch=2, log_every_n_steps=1,
                         num_sanity_val_steps=0)
    before = [p.detach().clone() for p in sim.parameters()]
    trainer.fit(module, WindowLoader(splits.train, 16, shuffle=True), WindowLoader(splits.val, 16))
    return trainer, module, before


def test_one_optimizer_step_per_batch_and_loss_per_epoch(splits, tmp_path):
    trainer, module, before = _fit(splits, tmp_path, epochs=3)
    assert trainer.global_step == 3 * 4 and module.samples_seen == 3 * 64
    assert all(not torch.equal(a, p) for a, p in zip(before, module.simulator.parameters()))
    metrics = read_metrics_csv(trainer.logger.log_dir + "/metrics.csv")
    assert [e for e, _ in metrics["train_loss"]] == [0, 1, 2]
    assert all(math.isfinite(v) and v > 0 for _, v in metrics["train_loss"])
    assert float(trainer.callback_metrics["train_loss"]) == metrics["train_loss"][-1][1]
    assert [e for e, _ in metrics["val_loss"]] == [1]  # validation every second epoch


def test_cosine_schedule_steps_once_per_epoch(splits, tmp_path):
    trainer, module, _ = _fit(splits, tmp_path, epochs=4, lr_schedule="cosine", min_lr=1e-4)
    sched = module.lr_schedulers()
    assert sched.last_epoch == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)  # T_max = max_epochs: at its end


def test_plateau_schedule_steps_on_validated_epochs(splits, tmp_path):
    trainer, module, _ = _fit(splits, tmp_path, epochs=6, lr_schedule="plateau")
    sched = module.lr_schedulers()
    assert sched.last_epoch == 3  # epochs 2, 4 and 6 validated
    assert sched.best == pytest.approx(min(v for _, v in read_metrics_csv(trainer.logger.log_dir + "/metrics.csv")["val_loss"]))


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_epoch_train_loss_is_the_mean_loss_over_the_epoch(splits):
    """With lr 0 the weights stay put, so each epoch's logged train loss is the loss of the whole
    training split (equal batches: the sample-weighted mean of batch losses is the full mean)."""
    _quiet_lightning()
    sim = _simulator(splits)
    module = DynamicsModule(sim, lr=0.0)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, WindowLoader(splits.train, 16, shuffle=True))
    with torch.no_grad():
        full = float(sim.loss(splits.train.batch()))
    assert trainer.global_step == 2 * 4
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(full, rel=1e-5)


def test_per_hook_attributes_are_plain_and_registration_still_works(splits):
    """Lightning's _current_fx_name and the sample counters are plain attributes (no nn.Module
    registry checks); anything else, or other value types, still goes through nn.Module."""
    module = DynamicsModule(_simulator(splits), lr=0.01)
    module._current_fx_name = "training_step"
    module.samples_seen = 7
    assert module.__dict__["_current_fx_name"] == "training_step" and module.samples_seen == 7
    module._current_fx_name = None
    assert module._current_fx_name is None
    module._loss_count = torch.nn.Parameter(torch.ones(1))  # not an int: registered as a parameter
    assert "_loss_count" in dict(module.named_parameters()) and "_loss_count" not in module.__dict__
