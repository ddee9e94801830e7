"""Typed run configuration, read from YAML with command-line overrides.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that
names the file and the key instead of a silently ignored setting. Model hyper-parameters
(``model.params``) and dataset options (``data.options``) are validated by the model's and
the dataset's own classes when the run is built.

Overrides use dotted keys and YAML values: ``training.lr=1e-3``, ``data.options.dim=2``.

A file's ``model.params`` belong to its model: when the overrides switch to another model
(``model.name=egnn``, or another dataset whose default model differs), the file's params are
dropped and the new model starts from its own defaults plus any ``model.params.*`` overrides.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphdyn.errors import GraphdynError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    source: str = "springs"  #: dataset name (see graphdyn.data.registry)
    options: dict[str, Any] = Field(default_factory=dict)  #: the dataset's own options
    T: int | None = Field(None, ge=1)  #: observed frames per sample (None: the dataset's default)
    delta: int | None = Field(None, ge=1)  #: stride between frames (None: the dataset's default)


#: the model a dataset is trained with when the config names none
DEFAULT_MODELS = {"md17": "estag", "adk": "estag", "mocap": "estag"}


def default_model(source: str) -> str:
    """The model of a config that names none: ESTAG for the paper's datasets, else the notebook's gnn."""
    return DEFAULT_MODELS.get(source, "gnn")


class ModelConfig(_Strict):
    #: model name (see graphdyn.models.registry); None: the dataset's usual model, ESTAG
    #: for the paper's datasets (md17, adk, mocap), the notebook's gnn otherwise
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    #: learn the target divided by its training-set standard deviation (multiplied back at
    #: prediction time); off by default, as in the notebook
    normalize_target: bool = False
    #: which implementation runs the hot ops (graphdyn.ops.backend): "auto" (the C kernels where
    #: they built, else PyTorch), "torch" (the plain-autograd reference) or "native" (the kernels,
    #: an error where they did not build); None: $GRAPHDYN_BACKEND, else "auto"
    backend: Literal["auto", "torch", "native"] | None = None


class NoiseConfig(_Strict):
    """Noise on the observed frames of every training window (never on validation or test
    windows); see :meth:`graphdyn.simulator.LearnedSimulator.add_noise`. Off by default."""

    #: standard deviation of the last observed frame's noise, per coordinate, in the data's
    #: length unit (Angstrom for molecules); 0 (default) adds none
    std: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: "random_walk" (DeepMind's learned simulators: increments of std/sqrt(T) per frame summed
    #: over the window) or "gaussian" (std on every frame independently)
    kind: Literal["random_walk", "gaussian"] = "random_walk"
    #: the target of a noisy window: "velocity" (DeepMind's) moves the target frames with the
    #: last observed frame's noise (the model learns the clean displacement), "position" keeps
    #: the clean frames (the model learns to undo the positions' noise too)
    correction: Literal["velocity", "position"] = "velocity"


class UnrollConfig(_Strict):
    """A loss over several strides of the model's own rollout (validation and test losses stay
    one-stride); see :meth:`graphdyn.simulator.LearnedSimulator.loss`."""

    #: K: strides the model rolls forward in each training window (1, the default: the
    #: one-stride loss); training windows without K frames after them are dropped
    strides: int = Field(1, ge=1)
    #: "pushforward" (gradients through the last stride of each term only; Brandstetter et al.
    #: 2022) or "unrolled" (through every stride)
    mode: Literal["pushforward", "unrolled"] = "pushforward"
    #: one non-negative weight per stride (normalized to sum 1); None: equal weights.
    #: Brandstetter's pushforward trick is weights [0, ..., 0, 1]
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check_weights(self) -> "UnrollConfig":
        w = self.weights
        if w is not None:
            if len(w) != self.strides:
                raise ValueError(f"weights has {len(w)} entries for strides={self.strides}; give one per stride")
            if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
                raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
        return self


class TrainingConfig(_Strict):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(100, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "adamw"] = "adam"
    #: "none" (constant, the default), "cosine" (anneal to min_lr over the epochs), or
    #: "plateau" (divide by 10 when the validation loss stalls for 3 checks)
    lr_schedule: Literal["none", "cosine", "plateau"] = "none"
    min_lr: float = Field(0.0, ge=0)
    #: stop after this many validation checks without improvement (None: never)
    patience: int | None = Field(None, ge=1)
    val_every: int = Field(1, ge=1)  #: validate every this many epochs
    max_time_s: float | None = Field(None, gt=0)  #: wall-clock budget for fitting
    accelerator: str = "auto"  #: "cpu", "gpu", "auto" (a GPU when one is present)
    devices: int | str = "auto"
    strategy: str = "auto"  #: e.g. "ddp" for multi-GPU / multi-node
    num_nodes: int = Field(1, ge=1)
    precision: str = "32-true"
    deterministic: bool = False
    #: per-epoch output: a progress bar when stderr is a terminal, else one line per epoch
    progress: bool = True
    threads: int | None = Field(None, ge=1)  #: torch CPU threads (None: torch's default)
    #: experiment loggers (Lightning's), writing under the run folder: "csv" (always kept: the
    #: report reads metrics.csv), "tensorboard", "mlflow" (a file store), "wandb" (offline
    #: unless WANDB_MODE or WANDB_API_KEY is set). One name or a list.
    logger: list[Literal["csv", "tensorboard", "mlflow", "wandb"]] = Field(default_factory=lambda: ["csv"])
    #: training for long rollouts: noise on the input frames, a loss over K strides (both off by default)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    unroll: UnrollConfig = Field(default_factory=UnrollConfig)

    @field_validator("logger", mode="before")
    @classmethod
    def _logger_list(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ["csv", *(v for v in value if v != "csv")]  # csv first, once
            return list(dict.fromkeys(value))
        return value


class EvalConfig(_Strict):
    rollout_steps: int = Field(500, ge=1)
    rollout_starts: int = Field(16, ge=1)  #: test start points for the rollout statistics
    batch_size: int = Field(2000, ge=1)
    #: bond-length deviation that makes a rollout unstable, in the data's length unit (None: per dataset kind,
    #: 0.5 A for molecules; see graphdyn.evaluation.stability)
    stability_threshold: float | None = Field(None, gt=0, allow_inf_nan=False)
    hr_bins: int = Field(100, ge=2)  #: bins of the h(r) and bond-length histograms
    short_horizon: int | None = Field(None, ge=1)  #: strides of the short-horizon MSE (None: the decorrelation horizon)


class RunConfig(_Strict):
    name: str | None = None  #: run name (default: model and dataset names)
    seed: int = 0
    output_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_config(raw: dict[str, Any], source: str | Path | None = None) -> RunConfig:
    """Validate a config dictionary; errors name the source and the key."""
    try:
        return RunConfig(**(raw or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise GraphdynError(f"unknown config key '{loc}'", path=source, field=loc) from None
        raise GraphdynError(f"{err['msg']} (got {err.get('input')!r})", path=source, field=loc) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``key.sub=value`` overrides applied (values parsed as YAML)."""
    out = copy.deepcopy(raw or {})
    for item in overrides or []:
        if "=" not in item:
            raise GraphdynError(f"override {item!r} must look like key.sub=value", field="--set")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise GraphdynError(f"override {item!r} has an empty key", field="--set")
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise GraphdynError(f"cannot set {key!r}: {p!r} is not a section", field=key)
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise GraphdynError("config file not found", path=path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GraphdynError(f"invalid YAML ({str(exc).splitlines()[0]})", path=path) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GraphdynError("a config must be a mapping of sections", path=path)
    return raw


def _model_of(raw: dict[str, Any]) -> str | None:
    """The model a raw config trains (its default model when it names none), or None when
    the sections are malformed (left for validation to report)."""
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    name = model.get("name")
    if name is not None:
        return str(name)
    source = data.get("source", DataConfig.model_fields["source"].default)
    return default_model(source) if isinstance(source, str) else None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from the defaults) and apply overrides.

    When the overrides switch the model (its name, or the dataset and with it the default
    model), the file's ``model.params`` are dropped: they were the file model's.
    """
    if path is not None:
        path = resolve_config_path(path)
    raw = read_yaml(path) if path is not None else {}
    merged = apply_overrides(raw, overrides or [])
    before, after = _model_of(raw), _model_of(merged)
    if before is not None and after is not None and before != after and isinstance(raw.get("model"), dict) and "params" in raw["model"]:
        raw = copy.deepcopy(raw)
        del raw["model"]["params"]
        merged = apply_overrides(raw, overrides or [])
    return parse_config(merged, source=path)


CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def builtin_configs() -> list[str]:
    """Names of the configs shipped with graphdyn."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped with graphdyn (``graphdyn/configs/<name>.yaml``)."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise GraphdynError(f"no built-in config named {name!r}; built-in: {', '.join(builtin_configs())}")
    return path


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A config file path, or the name of a built-in config (``notebook_acc``, ``estag_md17`` ...)."""
    path = Path(path_or_name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    if (CONFIG_DIR / f"{path.name}.yaml").exists():
        return CONFIG_DIR / f"{path.name}.yaml"
    return path
