"""A training run, start to finish: config -> data -> model -> Lightning fit -> evaluation -> files.

Every run has its own folder: a new ``<output_dir>/<name>-<timestamp>-<suffix>`` (runs never
overwrite each other), or the folder the caller names (``run_dir``; it must not hold a run
already). It holds::

    config.yaml            the resolved config (every default filled in)
    metrics.csv            Lightning CSVLogger: train/val losses per epoch
    checkpoints/best.ckpt  best validation loss (Lightning; carries the graphdyn description)
    checkpoints/last.ckpt  the whole training state after the last finished epoch (the resume point)
    model.pt               self-describing checkpoint of the best weights (graphdyn.training.checkpoint)
    results.json           status, test metrics, rollout summary, timings, memory, data checksum, seed
    report.md              the same, for people
    figures/               loss.png, rollout.png, error_vs_step.png
    tensorboard/ mlruns/ wandb/   the other loggers of ``training.logger``, when asked for

``results.json`` is written last: a folder with it is a finished run.

**Resuming.** ``last.ckpt`` is written after every epoch (atomically: to a temporary file in
the same folder, then renamed, so a kill leaves the previous one whole) and holds what
Lightning restores with ``trainer.fit(ckpt_path=...)``: weights, optimizer and scheduler,
epoch and loop counters, the best-checkpoint and early-stopping state, and the torch random
state. ``train(config, run_dir=DIR, resume=True)`` continues from it, and, since the shuffle
order of an epoch comes from the seed and the epoch number alone, ends with the weights and
metrics an uninterrupted run ends with. A kill loses at most the epoch in progress.

**Divergence.** A NaN or infinite training loss stops the fit at that step (before the
optimizer step). The best checkpoint so far, if any, is evaluated and saved as usual;
results.json records ``"status": "diverged"``, ``"diverged": {"epoch", "step", "value"}``
(epoch and step counting from 1) and the one-line ``"message"``. A run that ends normally
records ``"status": "completed"``. Non-finite numbers are written as ``null`` in results.json
and as "diverged" in report.md.
"""

from __future__ import annotations

import csv
import importlib
import logging
import math
import os
import resource
import secrets
import sys
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
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.plugins import TorchCheckpointIO

from graphdyn.ops import backend as ops_backend
from graphdyn.data.registry import DataSplits, Window, build_dataset
from graphdyn.data.windows import WindowDataset, WindowLoader
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.metrics import test_metrics
from graphdyn.evaluation.rollout import RolloutResult, rollout_test, summary_lines
from graphdyn.evaluation.rollout import write_figures as write_rollout_figures
from graphdyn.io import atomic_path, write_json, write_text
from graphdyn.models.base import DataInfo, DynamicsModel
from graphdyn.models.registry import build_model, model_class
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.checkpoint import make_meta, save_checkpoint
from graphdyn.training.config import DEFAULT_MODELS, RunConfig, default_model, parse_config, read_yaml  # noqa: F401 (DEFAULT_MODELS: re-exported)
from graphdyn.training.module import Diverged, DynamicsModule
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


def target_std(model: DynamicsModel, train: WindowDataset, max_samples: int = 20000) -> float:
    """Standard deviation of ``model``'s training target over (up to ``max_samples``) training
    windows: the scale ``model.normalize_target`` divides the target by (1 if it is zero)."""
    n = min(len(train), max_samples)
    return float(LearnedSimulator(model).training_target(train.batch(np.arange(n))).std()) or 1.0


def prepare(config: RunConfig) -> Prepared:
    """Build data, model and simulator from a config (seeded)."""
    if config.model.name is None:
        config = config.model_copy(deep=True)
        config.model.name = default_model(config.data.source)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    try:  # build (or find) the native kernels now: a missing compiler warns before any data is built
        ops_backend.resolve(config.model.backend)
    except (ValueError, RuntimeError) as exc:
        raise GraphdynError(str(exc), field="model.backend") from None
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    if model_class(config.model.name).last_frame_only and (config.data.T or 1) > 1:
        # checked before the data is built: T frames would be simulated or read, then ignored
        raise GraphdynError(
            f"model '{config.model.name}' reads the last observed frame only, so data.T={config.data.T} would be ignored; "
            "set data.T=1, or use a model that reads several frames (estag, st_egnn, ...)",
            field="data.T",
        )
    splits = build_dataset(config.data.source, config.data.options, Window(config.data.T, config.data.delta), config.seed)
    strides = config.training.unroll.strides
    if strides > 1:  # training windows carry the K frames a K-stride loss compares with; val/test stay one-stride
        splits.train = splits.train.with_horizon(strides)
        if len(splits.train) == 0:
            raise GraphdynError(
                f"no training window of the {config.data.source} data has {strides} strides of frames after it "
                f"(T={splits.train.T}, delta={splits.train.delta}, {splits.train.traj.n_frames} frames per run); lower training.unroll.strides",
                field="training.unroll.strides",
            )
    info = data_info(splits.train)
    model = build_model(config.model.name, config.model.params, info, backend=config.model.backend)
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
CHECKPOINTS = "checkpoints"
LAST_CKPT = "last.ckpt"
BEST_CKPT = "best.ckpt"
#: what marks a folder as holding a run (other files, e.g. a harness's own, may be there)
RUN_FILES = ("config.yaml", CHECKPOINTS, "results.json", "model.pt")
#: config keys that may differ between a run and its resumption: they change where output
#: goes, how much the process prints and how many threads it uses, never a result
RESUME_FREE_KEYS = ("name", "output_dir", "training.threads", "training.progress", "training.logger")


def _launched_child() -> bool:
    """A process that Lightning started for multi-process training (not the first)."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def new_run_dir(config: RunConfig) -> Path:
    """A new, unique run folder. Under multi-process training (DDP) the processes that
    Lightning launches inherit the first process's folder through ``GRAPHDYN_RUN_DIR``."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and _launched_child():
        return Path(inherited)
    name = config.name or f"{config.model.name}-{config.data.source}"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(config.output_dir) / f"{name}-{stamp}-{secrets.token_hex(2)}"
    path.mkdir(parents=True, exist_ok=False)
    os.environ[RUN_DIR_ENV] = str(path)
    return path


def check_new_run_dir(path: Path) -> None:
    """``path`` may receive a new run: absent, or a folder holding no run yet."""
    if path.exists() and not path.is_dir():
        raise GraphdynError("not a folder", path=path, field="run_dir")
    held = [name for name in RUN_FILES if (path / name).exists()]
    if held:
        raise GraphdynError(f"the folder holds a run already ({', '.join(held)}); resume it with --resume or choose another folder",
                            path=path, field="run_dir")


def _differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys where two config dictionaries differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix[:-1], a, b)]


def resume_config(run_dir: Path, given: RunConfig | None = None) -> RunConfig:
    """The config of the unfinished run in ``run_dir`` (its own config.yaml).

    A ``given`` config must agree with it except for :data:`RESUME_FREE_KEYS`, whose given
    values are used (threads, output, loggers of this process).
    """
    if not run_dir.is_dir():
        raise GraphdynError("run folder not found", path=run_dir, field="run_dir")
    results = run_dir / "results.json"
    if results.exists():
        try:
            import json

            status = json.loads(results.read_text()).get("status", "completed")
        except (ValueError, OSError, AttributeError):
            status = "unknown"
        raise GraphdynError(f"the run has finished already (status: {status}, results.json); nothing to resume", path=run_dir)
    path = run_dir / "config.yaml"
    if not path.exists():
        raise GraphdynError("not a graphdyn run folder (no config.yaml) or one whose run never started", path=run_dir)
    saved = parse_config(read_yaml(path), source=path)
    if given is None:
        return saved
    mine = saved.to_dict()
    theirs = given.to_dict()
    if theirs["model"]["name"] is None:
        theirs["model"]["name"] = default_model(given.data.source)
    for key, in_run, here in _differences(mine, theirs):
        if not any(key == free or key.startswith(free + ".") for free in RESUME_FREE_KEYS):
            raise GraphdynError(f"the config to resume with has {key}={here!r}; the run was started with {in_run!r}", path=path, field=key)
    return saved.model_copy(update={
        "name": given.name,
        "output_dir": given.output_dir,
        "training": saved.training.model_copy(update={k: getattr(given.training, k) for k in ("threads", "progress", "logger")}),
    })


@dataclass
class RunResult:
    run_dir: Path
    simulator: LearnedSimulator
    splits: DataSplits
    metrics: dict[str, Any]
    rollout: RolloutResult | None
    #: "completed", or "diverged" (a non-finite training loss stopped the fit)
    status: str = "completed"
    #: the one-line divergence message ("training diverged: loss is nan at epoch ...") or None
    message: str | None = None


class TrainingDiverged(GraphdynError):
    """A run stopped by a non-finite training loss (``graphdyn train`` exits with code 3)."""

    exit_code = 3


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device summaries, deprecations) off the console."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on local disks: the checkpoint goes to a
    temporary file beside its final name and is renamed onto it once complete, so a kill
    during the write leaves the previous checkpoint whole."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that never takes a non-finite score as the best (its own
    saves the first validation whatever its value, NaN and infinity included)."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is not None and not bool(torch.isfinite(current)):
            return False
        return super().check_monitor_top_k(trainer, current)


class LastCheckpoint(Checkpoint):
    """Writes ``checkpoints/last.ckpt`` at the end of every training epoch.

    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so Lightning calls its epoch-end hook
    after the module's (learning-rate schedule stepped, train loss recorded) and after early
    stopping and the best-checkpoint callback have updated their state. The loggers are
    flushed first, so metrics.csv holds every epoch the checkpoint holds. Its own state says
    whether the fit had finished (last epoch, or stopped early) and holds the torch random
    state, restored on resume.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.finished = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1  # the epoch counter moves on after this hook
        self.finished = bool(trainer.should_stop) or (trainer.max_epochs is not None and 0 <= trainer.max_epochs <= done)
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(self.path)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"finished": self.finished, "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.finished = bool(state_dict.get("finished", False))
        if "torch_rng" in state_dict:
            torch.set_rng_state(state_dict["torch_rng"])
        if "cuda_rng" in state_dict and torch.cuda.is_available() and len(state_dict["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda_rng"])


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars on stderr (Lightning's own write to stdout), beside the other
    progress output: ``graphdyn train > log`` keeps the log free of bars."""

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.train_description, position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stderr, smoothing=0, bar_format=self.BAR_FORMAT)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.validation_description, position=2 * self.process_position + 1, disable=self.is_disabled, leave=False,
                    dynamic_ncols=True, file=sys.stderr, bar_format=self.BAR_FORMAT)


class EpochLines(pl.Callback):
    """One line per finished epoch on stderr, for logs (no carriage returns, no bars)::

        epoch 12/100  train_loss 0.00123  val_loss 0.00141  0.81 s

    An epoch's line is printed when the next epoch starts (or training ends), once the module
    has recorded its training loss; val_loss appears on the epochs that validated.
    """

    def __init__(self) -> None:
        self._pending: tuple[int, float] | None = None
        self._validated: int | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._emit(trainer)
        self._pending = (trainer.current_epoch, time.perf_counter())

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._emit(trainer)

    def _emit(self, trainer: pl.Trainer) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not trainer.is_global_zero:
            return
        epoch, t0 = pending
        metrics = trainer.callback_metrics
        parts = [f"epoch {epoch + 1}/{trainer.max_epochs}"]
        for key in ("train_loss", "val_loss"):
            if key in metrics and (key == "train_loss" or self._validated == epoch):
                parts.append(f"{key} {float(metrics[key]):.3g}")
        parts.append(f"{time.perf_counter() - t0:.2f} s")
        print("  ".join(parts), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- loggers
#: logger -> (packages that provide it, first = the one the extra installs)
LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}
LOGGER_IDS = "loggers.json"  # run ids of mlflow / wandb, so a resumed run logs into the same run


def _require_logger(name: str) -> None:
    for package in LOGGER_PACKAGES[name]:
        try:
            importlib.import_module(package)
            return
        except ImportError:
            continue
    raise GraphdynError(f"the {name} logger needs the {LOGGER_PACKAGES[name][0]} package: pip install graphdyn[{name}]",
                        field="training.logger")


def make_loggers(names: list[str], run_dir: Path, experiment: str, resume: bool) -> list[Logger]:
    """Lightning loggers for ``training.logger``, all writing under ``run_dir``; the CSV logger
    (``metrics.csv``, read by the report) is always the first."""
    import json

    for name in names:
        if name != "csv":
            _require_logger(name)
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    ids_path = run_dir / LOGGER_IDS
    ids = json.loads(ids_path.read_text()) if resume and ids_path.exists() else {}
    for name in names:
        if name == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False))
        elif name == "mlflow":
            from pytorch_lightning.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
            logger = MLFlowLogger(experiment_name=experiment, run_name=run_dir.name, tracking_uri=uri, run_id=ids.get("mlflow"))
            ids["mlflow"] = logger.run_id
            loggers.append(logger)
        elif name == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            configured = bool(os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"))
            ids.setdefault("wandb", secrets.token_hex(8))
            loggers.append(WandbLogger(name=run_dir.name, save_dir=str(run_dir), id=ids["wandb"], offline=not configured,
                                       project=os.environ.get("WANDB_PROJECT", "graphdyn")))
    if ids:
        write_json(ids_path, ids)
    return loggers


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _carry_metrics_csv(logger: CSVLogger, run_dir: Path, epochs_done: int) -> None:
    """On resume: keep the rows of ``metrics.csv`` for the epochs the checkpoint holds (the
    CSV logger starts its file anew), dropping those of the interrupted epoch. The old file
    is first renamed aside, so a kill during this step loses nothing."""
    path = run_dir / "metrics.csv"
    aside = run_dir / ".metrics.before-resume.csv"
    if path.exists():
        os.replace(path, aside)
    if not aside.exists():
        return
    with open(aside, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = 0
    for row in rows:
        values = {k: _number(v) for k, v in row.items() if k and v not in ("", None)}
        if "step" not in values or values.get("epoch", math.inf) >= epochs_done:
            continue
        step = int(values.pop("step"))
        logger.log_metrics(values, step=step)
        kept += 1
    if kept:
        logger.save()
    aside.unlink()


# ---------------------------------------------------------------------- fit
def _checkpoint_state(path: Path) -> dict[str, Any]:
    """What a resume needs to know of ``last.ckpt`` before Lightning restores it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which, in one line
        raise GraphdynError(f"cannot read the checkpoint to resume from ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})",
                            path=path) from None
    callbacks = ckpt.get("callbacks", {})
    last = callbacks.get(LastCheckpoint.__qualname__, {})
    best = next((v for k, v in callbacks.items() if k.startswith(BestCheckpoint.__qualname__ + "{")), {})
    score = best.get("best_model_score")
    return {
        "epochs": int(ckpt["epoch"]) + 1,
        "global_step": int(ckpt.get("global_step", 0)),
        "finished": bool(last.get("finished", False)),
        "best_val_loss": None if score is None else float(score),
    }


def _peak_memory(device: torch.device) -> tuple[float | None, str]:
    """Peak memory of the fit: CUDA's allocator peak on a GPU, else the process's peak
    resident set (``ru_maxrss``: since the process started, so an upper bound when it ran
    bigger jobs before)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_max_rss"


def fit(prep: Prepared, run_dir: Path, *, quiet: bool = False, resume: bool = False) -> dict[str, Any]:
    """Train with Lightning; load the best-validation weights into ``prep.simulator``.

    ``resume``: continue from ``run_dir/checkpoints/last.ckpt`` when it exists. Returns the
    fit's numbers, plus ``is_global_zero`` and ``diverged`` (a :class:`Diverged` or None) for
    :func:`train` to take out. Of the numbers, ``epochs`` and ``optimizer_steps`` count the
    whole run (``resumed_from_epoch`` of them before this process), the others this process:
    ``fit_seconds`` (the fit's wall time, evaluation excluded), ``seconds_per_epoch`` (that
    over the epochs run here, an epoch cut short by divergence counting as one; None when
    none ran), ``samples_per_second``, ``peak_memory_mb`` (MiB) and ``peak_memory_kind``
    (``process_max_rss`` or ``cuda_max_allocated``). ``best_epoch`` counts from 1.
    """
    _quiet_lightning()
    cfg = prep.config.training
    ckpt_dir = run_dir / CHECKPOINTS
    last_path = ckpt_dir / LAST_CKPT
    resume_from = last_path if resume and last_path.exists() else None
    state = _checkpoint_state(resume_from) if resume_from is not None else {"epochs": 0, "global_step": 0, "finished": False, "best_val_loss": None}
    first = not _launched_child()  # files are tidied by the first process of a multi-process run
    if resume and first:
        for stray in ckpt_dir.glob(".*.tmp*"):  # a checkpoint write that a kill interrupted
            stray.unlink()
        if resume_from is None and (ckpt_dir / BEST_CKPT).exists():
            (ckpt_dir / BEST_CKPT).unlink()  # from an epoch whose last.ckpt was never written: starting over
    module = DynamicsModule(prep.simulator, lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, meta=prep.meta,
                            lr_schedule=cfg.lr_schedule, min_lr=cfg.min_lr, noise=cfg.noise, unroll=cfg.unroll)
    best = BestCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1, save_last=False)
    callbacks: list[pl.Callback] = [best, LastCheckpoint(last_path)]
    if cfg.patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience))
    show_progress = cfg.progress and not quiet
    bar = show_progress and sys.stderr.isatty()
    if bar:
        callbacks.append(StderrProgressBar(refresh_rate=max(1, len(prep.splits.train) // cfg.batch_size // 4)))
    elif show_progress:
        callbacks.append(EpochLines())
    loggers = make_loggers(cfg.logger, run_dir, prep.config.name or f"{prep.config.model.name}-{prep.config.data.source}", resume)
    if resume and first:
        _carry_metrics_csv(loggers[0], run_dir, state["epochs"])
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        max_time=None if cfg.max_time_s is None else {"seconds": cfg.max_time_s},
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        deterministic=cfg.deterministic,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        check_val_every_n_epoch=cfg.val_every,
        num_sanity_val_steps=0,
        enable_progress_bar=bar,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    train_loader = WindowLoader(prep.splits.train, cfg.batch_size, shuffle=True, drop_last=False, seed=prep.config.seed)
    val_loader = WindowLoader(prep.splits.val, max(cfg.batch_size, prep.config.eval.batch_size))
    device = trainer.strategy.root_device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    diverged: Diverged | None = None
    ops_backend.reset_usage()  # what the hot ops ran during this fit (graphdyn.ops.backend)
    t0 = time.perf_counter()
    if not state["finished"]:
        try:
            trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=resume_from)
        except Diverged as exc:
            diverged = exc
        epochs, steps = trainer.current_epoch, trainer.global_step
        best_path = Path(best.best_model_path) if best.best_model_path else None
        best_score = None if best.best_model_score is None else float(best.best_model_score)
    else:  # the fit had ended; the process stopped before the results were written
        epochs, steps, best_score = state["epochs"], state["global_step"], state["best_val_loss"]
        best_path = ckpt_dir / BEST_CKPT
    fit_time = time.perf_counter() - t0
    peak_mb, peak_kind = _peak_memory(device)
    best_epoch = None
    if best_path is not None and best_path.exists():
        ckpt = torch.load(best_path, map_location="cpu", weights_only=True)
        module.load_state_dict(ckpt["state_dict"])
        best_epoch = int(ckpt["epoch"]) + 1
    prep.simulator.to("cpu")
    timed_epochs = epochs - state["epochs"] + (diverged is not None)  # the diverged epoch ran in part
    return {
        "fit_seconds": fit_time,
        "epochs": epochs,
        "resumed_from_epoch": state["epochs"],
        "optimizer_steps": steps,
        "seconds_per_epoch": fit_time / timed_epochs if timed_epochs > 0 else None,
        "samples_per_second": module.samples_seen / fit_time if module.samples_seen and fit_time > 0 else None,
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": peak_kind,
        "best_val_loss": best_score,
        "best_epoch": best_epoch,
        "backend": ops_backend.resolve(prep.config.model.backend),
        "ops": ops_backend.usage(),
        "is_global_zero": trainer.is_global_zero,
        "diverged": diverged,
    }


# ---------------------------------------------------------------------- evaluation and report
def evaluate(prep: Prepared, run_dir: Path | None = None, *, rollout_steps: int | None = None, rollout_starts: int | None = None) -> tuple[dict[str, Any], RolloutResult | None]:
    """Test metrics and a rollout summary; figures into ``run_dir/figures`` when given."""
    ev = prep.config.eval
    metrics: dict[str, Any] = {"test": test_metrics(prep.simulator, prep.splits.test, ev.batch_size)}
    steps = rollout_steps or ev.rollout_steps
    result = None
    try:
        result = rollout_test(prep.simulator, prep.splits, steps, rollout_starts or ev.rollout_starts, stability_threshold=ev.stability_threshold,
                              hr_bins=ev.hr_bins, short_horizon_steps=ev.short_horizon)
        metrics["rollout"] = result.summary()
    except Exception as exc:  # a too-short test trajectory must not lose the run
        metrics["rollout"] = {"skipped": str(exc)}
    if run_dir is not None:
        _loss_figure(prep, run_dir)
        if result is not None:  # figures of a rollout that blew up would have no finite axis limits
            fig_dir = run_dir / "figures"
            start = result.start[0:1].numpy()
            if bool(torch.isfinite(result.pred[0]).all()):
                plots.rollout_figure(np.concatenate([start, result.true[0].numpy()]), np.concatenate([start, result.pred[0].numpy()]),
                                     fig_dir / "rollout.png", title=f"{prep.config.model.name}: {result.steps}-step rollout vs {result.source}")
            if bool((np.isfinite(result.mse) & (result.mse > 0)).any()):
                plots.error_vs_step({prep.config.model.name: result.mse}, fig_dir / "error_vs_step.png")
            write_rollout_figures(result, fig_dir, prep.config.model.name)  # hr.png, bond_lengths.png, short_horizon.png
    return metrics, result


def _loss_figure(prep: Prepared, run_dir: Path) -> None:
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    if (run_dir / "metrics.csv").exists():
        plots.loss_curves(run_dir / "metrics.csv", fig_dir / "loss.png", title=f"{prep.config.model.name} on {prep.config.data.source}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _num(value: Any, fmt: str) -> str:
    """A number for report.md; a non-finite one reads "diverged", never a bare NaN."""
    return format(value, fmt) if _finite(value) else "diverged"


def _opt(value: Any, fmt: str) -> str:
    """An optional number for report.md ("n/a" when absent)."""
    return "n/a" if value is None else _num(value, fmt)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        return None
    return obj


def write_report(run_dir: Path, prep: Prepared, metrics: dict[str, Any]) -> None:
    test = metrics.get("test")
    roll = metrics.get("rollout", {})
    fitm = metrics.get("fit", {})
    status = metrics.get("status", "completed")
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- status: {status}" + (f" ({metrics['message']})" if metrics.get("message") else ""),
        f"- model: `{prep.config.model.name}` (target: {prep.simulator.target}), params {prep.meta['model']['params']}",
        f"- data: `{prep.config.data.source}` {prep.config.data.options}, window T={prep.meta['data']['window']['T']}, "
        f"delta={prep.meta['data']['window']['delta']}, samples {prep.meta['data']['samples']}, checksum {prep.meta['data']['checksum']}",
        f"- seed: {prep.config.seed}; graphdyn {prep.meta['graphdyn_version']}",
        "",
    ]
    if test is None:
        lines += ["No test metrics: training diverged before the first checkpoint.", ""]
    else:
        if status == "diverged":
            lines += [f"Metrics of the best checkpoint (epoch {fitm.get('best_epoch')}), kept when training diverged.", ""]
        lines += [
            "| metric | value |",
            "| --- | --- |",
            f"| test MSE on the learned target ({prep.simulator.target}) | {_num(test['target_mse'], '.6g')} |",
            f"| test MSE of the next position | {_num(test['pos_mse'], '.6g')} |",
        ]
        if "final_mse_mean" in roll:
            lines.append(f"| rollout position MSE at step {roll['steps']} (mean over {roll.get('finite_starts', roll['starts'])} of {roll['starts']} starts, "
                         f"vs {roll['truth']}) | {_num(roll['final_mse_mean'], '.6g')}{'; ' + roll['diverged'] if roll.get('diverged') else ''} |")
            if "energy_drift_pred" in roll:
                lines.append(f"| relative energy drift at step {roll['steps']} (median; learned / true integrator) | "
                             f"{_num(roll['energy_drift_pred'], '.3g')} / {_num(roll.get('energy_drift_true'), '.3g')} |")
        elif "skipped" in roll:
            lines.append(f"| rollout | skipped: {roll['skipped']} |")
    if fitm:
        resumed = f", resumed after epoch {fitm['resumed_from_epoch']}" if fitm.get("resumed_from_epoch") else ""
        lines += [
            "",
            f"Training in this process: {fitm['fit_seconds']:.2f} s; {fitm['epochs']} epochs and {fitm['optimizer_steps']} steps in all{resumed}; "
            f"{_opt(fitm.get('seconds_per_epoch'), '.3g')} s per epoch; {_opt(fitm.get('samples_per_second'), '.0f')} samples/s; "
            f"peak memory {_opt(fitm.get('peak_memory_mb'), '.0f')} MiB ({fitm.get('peak_memory_kind')}).",
        ]
        if fitm.get("ops"):
            lines += ["", f"Hot ops (backend {fitm.get('backend')}): " + "; ".join(ops_backend.describe_usage(fitm["ops"])) + "."]
    if test is not None and "steps" in roll:  # the rollout as a simulation scientist reads it (graphdyn.evaluation.rollout.summary_lines)
        lines += ["", "## Rollout: stability, h(r), short horizon", "", *(f"- {line.strip()}" for line in summary_lines(roll))]
        lines += [f"\n![{name}](figures/{name}.png)" for name in ("hr", "bond_lengths", "short_horizon") if (run_dir / "figures" / f"{name}.png").exists()]
    fig_dir = run_dir / "figures"
    figures = sorted(p.relative_to(run_dir).as_posix() for p in fig_dir.glob("*.png")) if fig_dir.exists() else []
    lines += ["", "Figures: " + (", ".join(f"`{f}`" for f in figures) if figures else "none") + ".", ""]
    write_text(run_dir / "report.md", "\n".join(lines))


def divergence_message(exc: Diverged, best_epoch: int | None) -> str:
    kept = f"kept the best checkpoint (epoch {best_epoch})" if best_epoch is not None else "no checkpoint yet"
    return f"training diverged: loss is {exc.value} at epoch {exc.epoch}, step {exc.step}; {kept}"


# ---------------------------------------------------------------------- the whole run
def train(config: RunConfig | None = None, *, quiet: bool = False, run_dir: Path | None = None, resume: bool = False) -> RunResult:
    """Run a whole training job; returns the run folder, the trained simulator and metrics.

    Args:
        config: the run's config. With ``resume`` it may be None (the run's own config.yaml
            is used); if given it must agree with config.yaml (see :func:`resume_config`).
        quiet: print nothing per epoch.
        run_dir: train into this folder (created if absent; it must hold no run unless
            resuming) instead of a new timestamped one under ``config.output_dir``.
        resume: continue the unfinished run in ``run_dir`` from ``checkpoints/last.ckpt``
            (from the start when the first epoch never finished). A finished run (results.json
            present) is an error.

    A run stopped by a non-finite loss returns with ``status == "diverged"`` and the
    one-line ``message``; nothing is raised (the CLI turns it into exit code 3).
    """
    if resume:
        if run_dir is None:
            raise GraphdynError("resuming needs the run folder", field="run_dir")
        run_dir = Path(run_dir)
        config = resume_config(run_dir, config)
    elif config is None:
        raise GraphdynError("no config to train with", field="config")
    elif run_dir is not None and not _launched_child():
        run_dir = Path(run_dir)
        check_new_run_dir(run_dir)
    for name in config.training.logger:  # a missing package before any folder is made
        if name != "csv":
            _require_logger(name)
    prep = prepare(config)
    if run_dir is None:
        run_dir = new_run_dir(prep.config)
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        write_text(run_dir / "config.yaml", yaml.safe_dump(prep.meta["config"], sort_keys=False))
    fit_metrics = fit(prep, run_dir, quiet=quiet, resume=resume)
    diverged = fit_metrics.pop("diverged")
    if not fit_metrics.pop("is_global_zero"):
        return RunResult(run_dir, prep.simulator, prep.splits, {"fit": fit_metrics}, None,
                         status="diverged" if diverged else "completed")
    metrics: dict[str, Any] = {"status": "completed"}
    message = None
    if diverged is not None:
        message = divergence_message(diverged, fit_metrics["best_epoch"])
        metrics = {"status": "diverged", "message": message,
                   "diverged": {"epoch": diverged.epoch, "step": diverged.step, "value": diverged.value}}
    result = None
    evaluated = diverged is None or fit_metrics["best_epoch"] is not None
    if evaluated:
        evaluation, result = evaluate(prep, run_dir)
        metrics.update(evaluation)
    else:
        _loss_figure(prep, run_dir)
    metrics["fit"] = fit_metrics
    metrics["parameters"] = sum(p.numel() for p in prep.simulator.parameters() if p.requires_grad)
    metrics["seed"] = prep.config.seed
    metrics["data_checksum"] = prep.meta["data"]["checksum"]
    metrics = json_safe(metrics)
    if evaluated:
        save_checkpoint(run_dir / "model.pt", prep.simulator, prep.meta, metrics)
    write_report(run_dir, prep, metrics)
    write_json(run_dir / "results.json", metrics)  # last: its presence marks a finished run
    return RunResult(run_dir, prep.simulator, prep.splits, metrics, result, status=metrics["status"], message=message)
