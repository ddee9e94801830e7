"""A training run, start to finish: config -> data -> model -> Lightning fit -> evaluation -> files.

Every run gets its own folder ``<output_dir>/<name>-<timestamp>-<suffix>`` (runs never
overwrite each other) holding::

    config.yaml         the resolved config (every default filled in)
    metrics.csv         Lightning CSVLogger: train/val losses per epoch
    checkpoints/best.ckpt  best validation loss (Lightning; carries the graphdyn description)
    model.pt            self-describing checkpoint of the best weights (graphdyn.training.checkpoint)
    results.json        test metrics, rollout summary, timings, data checksum, seed
    report.md           the same, for people
    figures/            loss.png, rollout.png, error_vs_step.png
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from graphdyn import native
from graphdyn.data.registry import DataSplits, Window, build_dataset
from graphdyn.data.windows import WindowDataset, WindowLoader
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.metrics import test_metrics
from graphdyn.evaluation.rollout import RolloutResult, rollout_test
from graphdyn.io import write_json, write_text
from graphdyn.models.base import DataInfo, DynamicsModel
from graphdyn.models.registry import build_model
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.checkpoint import make_meta, save_checkpoint
from graphdyn.training.config import RunConfig
from graphdyn.training.memory import keep_freed_memory
from graphdyn.training.module import DynamicsModule
from graphdyn.viz import plots


def data_info(ds: WindowDataset) -> DataInfo:
    """The :class:`DataInfo` a model is built from."""
    t = ds.traj
    return DataInfo(
        dim=t.dim,
        channels=t.n_channels,
        node_attr_dim=int(t.node_attr.shape[1]),
        edge_attr_dim=0 if t.edge_attr is None else int(t.edge_attr.shape[1]),
        T=ds.T,
        n_nodes=t.n_nodes,
        has_velocities=t.velocities is not None,
    )


@dataclass
class Prepared:
    config: RunConfig
    splits: DataSplits
    simulator: LearnedSimulator
    meta: dict[str, Any]


#: the model a dataset is trained with when the config names none
DEFAULT_MODELS = {"md17": "estag", "adk": "estag", "mocap": "estag"}


def target_std(model: DynamicsModel, train: WindowDataset, max_samples: int = 20000) -> float:
    """Standard deviation of ``model``'s training target over (up to ``max_samples``) training
    windows: the scale ``model.normalize_target`` divides the target by (1 if it is zero)."""
    n = min(len(train), max_samples)
    return float(LearnedSimulator(model).training_target(train.batch(np.arange(n))).std()) or 1.0


def prepare(config: RunConfig) -> Prepared:
    """Build data, model and simulator from a config (seeded)."""
    if config.model.name is None:
        config = config.model_copy(deep=True)
        config.model.name = DEFAULT_MODELS.get(config.data.source, "gnn")
    pl.seed_everything(config.seed, workers=True, verbose=False)
    native.load()  # build (or find) the native kernels now: a missing compiler warns before training starts
    keep_freed_memory()  # later steps reuse the pages of the first (graphdyn.training.memory)
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    splits = build_dataset(config.data.source, config.data.options, Window(config.data.T, config.data.delta), config.seed)
    info = data_info(splits.train)
    model = build_model(config.model.name, config.model.params, info)
    if model.needs_velocities and not info.has_velocities:
        raise GraphdynError(f"model '{config.model.name}' reads velocities, and the {config.data.source} data has none", field="model.name")
    simulator = LearnedSimulator(model, target_scale=target_std(model, splits.train) if config.model.normalize_target else None)
    resolved = config.to_dict()
    data_desc = {
        "source": config.data.source,
        "options": config.data.options,
        "window": {"T": splits.train.T, "delta": splits.train.delta, "dt": splits.train.dt},
        "samples": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "description": splits.description,
        "checksum": splits.train.traj.checksum(),
    }
    meta = make_meta(resolved, data_desc, info, config.model.name, model.params.model_dump(mode="json"))
    return Prepared(config, splits, simulator, meta)


RUN_DIR_ENV = "GRAPHDYN_RUN_DIR"


def new_run_dir(config: RunConfig) -> Path:
    """A new, unique run folder. Under multi-process training (DDP) the processes that
    Lightning launches inherit the first process's folder through ``GRAPHDYN_RUN_DIR``."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(inherited)
    name = config.name or f"{config.model.name}-{config.data.source}"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(config.output_dir) / f"{name}-{stamp}-{secrets.token_hex(2)}"
    path.mkdir(parents=True, exist_ok=False)
    os.environ[RUN_DIR_ENV] = str(path)
    return path


@dataclass
class RunResult:
    run_dir: Path
    simulator: LearnedSimulator
    splits: DataSplits
    metrics: dict[str, Any]
    rollout: RolloutResult | None


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device summaries, deprecations) off the console."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")


def fit(prep: Prepared, run_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Train with Lightning; load the best-validation weights into ``prep.simulator``."""
    _quiet_lightning()
    cfg = prep.config.training
    module = DynamicsModule(prep.simulator, lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, meta=prep.meta,
                            lr_schedule=cfg.lr_schedule, min_lr=cfg.min_lr)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_loss", mode="min", save_top_k=1, save_last=False)
    callbacks: list[pl.Callback] = [ckpt]
    if cfg.patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience))
    show_progress = cfg.progress and not quiet
    if show_progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, len(prep.splits.train) // cfg.batch_size // 4)))
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        max_time=None if cfg.max_time_s is None else {"seconds": cfg.max_time_s},
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        deterministic=cfg.deterministic,
        logger=CSVLogger(save_dir=str(run_dir), name="", version=""),
        callbacks=callbacks,
        check_val_every_n_epoch=cfg.val_every,
        num_sanity_val_steps=0,
        enable_progress_bar=show_progress,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    train_loader = WindowLoader(prep.splits.train, cfg.batch_size, shuffle=True, drop_last=False, seed=prep.config.seed)
    val_loader = WindowLoader(prep.splits.val, max(cfg.batch_size, prep.config.eval.batch_size))
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    fit_time = time.perf_counter() - t0
    if ckpt.best_model_path:
        state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    prep.simulator.to("cpu")
    steps = trainer.global_step
    samples = module.samples_seen
    return {
        "fit_seconds": fit_time,
        "epochs": trainer.current_epoch,
        "optimizer_steps": steps,
        "samples_per_second": samples / fit_time if fit_time > 0 else float("nan"),
        "best_val_loss": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
        "is_global_zero": trainer.is_global_zero,
    }


def evaluate(prep: Prepared, run_dir: Path | None = None, *, rollout_steps: int | None = None, rollout_starts: int | None = None) -> tuple[dict[str, Any], RolloutResult | None]:
    """Test metrics and a rollout summary; figures into ``run_dir/figures`` when given."""
    ev = prep.config.eval
    metrics: dict[str, Any] = {"test": test_metrics(prep.simulator, prep.splits.test, ev.batch_size)}
    steps = rollout_steps or ev.rollout_steps
    result = None
    try:
        result = rollout_test(prep.simulator, prep.splits, steps, rollout_starts or ev.rollout_starts)
        metrics["rollout"] = result.summary()
    except Exception as exc:  # a too-short test trajectory must not lose the run
        metrics["rollout"] = {"skipped": str(exc)}
    if run_dir is not None:
        fig_dir = run_dir / "figures"
        fig_dir.mkdir(exist_ok=True)
        if (run_dir / "metrics.csv").exists():
            plots.loss_curves(run_dir / "metrics.csv", fig_dir / "loss.png", title=f"{prep.config.model.name} on {prep.config.data.source}")
        if result is not None:
            start = result.start[0:1].numpy()
            plots.rollout_figure(np.concatenate([start, result.true[0].numpy()]), np.concatenate([start, result.pred[0].numpy()]),
                                 fig_dir / "rollout.png", title=f"{prep.config.model.name}: {result.steps}-step rollout vs {result.source}")
            plots.error_vs_step({prep.config.model.name: result.mse}, fig_dir / "error_vs_step.png")
    return metrics, result


def write_report(run_dir: Path, prep: Prepared, metrics: dict[str, Any]) -> None:
    test = metrics["test"]
    roll = metrics.get("rollout", {})
    fitm = metrics.get("fit", {})
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- model: `{prep.config.model.name}` (target: {prep.simulator.target}), params {prep.meta['model']['params']}",
        f"- data: `{prep.config.data.source}` {prep.config.data.options}, window T={prep.meta['data']['window']['T']}, "
        f"delta={prep.meta['data']['window']['delta']}, samples {prep.meta['data']['samples']}, checksum {prep.meta['data']['checksum']}",
        f"- seed: {prep.config.seed}; graphdyn {prep.meta['graphdyn_version']}",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| test MSE on the learned target ({prep.simulator.target}) | {test['target_mse']:.6g} |",
        f"| test MSE of the next position | {test['pos_mse']:.6g} |",
    ]
    if "final_mse_mean" in roll:
        lines.append(f"| rollout position MSE at step {roll['steps']} (mean over {roll['starts']} starts, vs {roll['truth']}) | {roll['final_mse_mean']:.6g} |")
        if "energy_drift_pred" in roll:
            lines.append(f"| relative energy drift at step {roll['steps']} (median; learned / true integrator) | {roll['energy_drift_pred']:.3g} / {roll.get('energy_drift_true', float('nan')):.3g} |")
    elif "skipped" in roll:
        lines.append(f"| rollout | skipped: {roll['skipped']} |")
    if fitm:
        lines += [
            f"| training wall time | {fitm['fit_seconds']:.2f} s ({fitm['epochs']} epochs, {fitm['optimizer_steps']} steps) |",
            f"| training throughput | {fitm['samples_per_second']:.0f} samples/s |",
        ]
    figures = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png"))
    lines += ["", "Figures: " + (", ".join(f"`{f}`" for f in figures) if figures else "none") + ".", ""]
    write_text(run_dir / "report.md", "\n".join(lines))


def train(config: RunConfig, *, quiet: bool = False) -> RunResult:
    """Run a whole training job; returns the run folder, the trained simulator and metrics."""
    prep = prepare(config)
    run_dir = new_run_dir(prep.config)
    if not (run_dir / "config.yaml").exists():
        write_text(run_dir / "config.yaml", yaml.safe_dump(prep.meta["config"], sort_keys=False))
    fit_metrics = fit(prep, run_dir, quiet=quiet)
    if not fit_metrics.pop("is_global_zero"):
        return RunResult(run_dir, prep.simulator, prep.splits, {"fit": fit_metrics}, None)
    metrics, result = evaluate(prep, run_dir)
    metrics["fit"] = fit_metrics
    metrics["seed"] = config.seed
    metrics["data_checksum"] = prep.meta["data"]["checksum"]
    save_checkpoint(run_dir / "model.pt", prep.simulator, prep.meta, metrics)
    write_json(run_dir / "results.json", metrics)
    write_report(run_dir, prep, metrics)
    return RunResult(run_dir, prep.simulator, prep.splits, metrics, result)
