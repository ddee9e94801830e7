"""Dataset registry: a name in a config -> a builder that returns train/val/test windows.

A builder has the signature ``build(options: dict, window: Window, seed: int) -> DataSplits``.
It validates ``options`` with its own pydantic class (unknown keys are errors), applies its
dataset's default ``T`` and ``delta`` where the config leaves them unset, and says how
ground truth for rollouts is obtained (a true simulator, recorded frames, or none).

:func:`build_dataset` holds the checks every dataset shares, once: ``T`` and ``delta`` are
whole numbers of at least 1; every split has the ``T`` and ``delta`` the config asked for (a
builder that cannot honour them must raise, never fall back); no split is empty (a window
too long for the trajectory is an error naming ``data.T``); errors of
:class:`~graphdyn.data.windows.WindowDataset` about ``T`` / ``delta`` name the config keys.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError

# name -> "module:function". Add a dataset by adding its file and one line here.
_DATASETS: dict[str, str] = {
    "springs": "graphdyn.data.simulated:build_springs",
    "charged": "graphdyn.data.simulated:build_charged",
    "gravity": "graphdyn.data.simulated:build_gravity",
    "file": "graphdyn.data.simulated:build_file",
    "md17": "graphdyn.data.md17:build_md17",
    "adk": "graphdyn.data.adk:build_adk",
    "mocap": "graphdyn.data.mocap:build_mocap",
}


SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Window:
    """Window options from the config; None means the dataset's default."""

    T: int | None = None
    delta: int | None = None


@dataclass
class DataSplits:
    """What a dataset builder returns.

    ``dynamics`` is a true simulator for rollouts against the physics (see
    :func:`graphdyn.physics.from_metadata`), or None, in which case rollouts compare with the
    recorded frames of ``test``'s trajectory.
    """

    name: str
    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    description: dict[str, Any] = field(default_factory=dict)
    dynamics: Any = None


class Options(BaseModel):
    """Base of every dataset's options class: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


def starts_digest(datasets: dict[str, WindowDataset]) -> str:
    """SHA-256 (16 hex digits) of every split's ``(run, start)`` pairs, in split-name order:
    a fingerprint of the split recorded in dataset descriptions."""
    h = hashlib.sha256()
    for name in sorted(datasets):
        h.update(name.encode())
        h.update(np.ascontiguousarray(datasets[name].starts, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def window_summary(datasets: dict[str, WindowDataset]) -> dict[str, Any]:
    """The shape part of a dataset description: runs, frames, nodes, channels, edges, T,
    delta, dt, units and the number of windows per split (all splits share one trajectory)."""
    first = next(iter(datasets.values()))
    traj = first.traj
    return {
        "runs": traj.n_runs,
        "frames": traj.n_frames,
        "nodes": traj.n_nodes,
        "channels": traj.n_channels,
        "edges": traj.n_edges,
        "T": first.T,
        "delta": first.delta,
        "dt": traj.dt,
        "units": dict(traj.units),
        "samples": {name: len(ds) for name, ds in datasets.items()},
    }


def _check_fractions(value: tuple[float, ...]) -> tuple[float, ...]:
    if any(f <= 0 for f in value) or sum(value) > 1 + 1e-12:
        raise ValueError(f"fractions must be positive and sum to at most 1, got {value}")
    return value


#: train / val / test fractions: positive, summing to at most 1
Fractions = Annotated[tuple[float, float, float], AfterValidator(_check_fractions)]


def parse_options(cls: type[BaseModel], options: dict[str, Any], prefix: str = "data.options") -> Any:
    """Validate ``options`` with ``cls``; raise GraphdynError naming the bad key."""
    try:
        return cls(**(options or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in (prefix, *err["loc"]))
        if err["type"] == "extra_forbidden":
            raise GraphdynError(f"unknown key '{loc}'", field=loc) from None
        raise GraphdynError(f"'{loc}': {err['msg']}", field=loc) from None


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_builder(name: str) -> Callable[..., DataSplits]:
    if name not in _DATASETS:
        raise GraphdynError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}", field="data.source")
    module, fn = _DATASETS[name].split(":")
    return getattr(importlib.import_module(module), fn)


def build_dataset(name: str, options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Build dataset ``name`` and check its windows (see the module docstring)."""
    builder = dataset_builder(name)
    for key in ("T", "delta"):
        value = getattr(window, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise GraphdynError(f"must be a whole number of at least 1, got {value!r}", field=f"data.{key}")
    try:
        splits = builder(options or {}, window, seed)
    except GraphdynError as exc:
        if exc.field in ("T", "delta"):  # WindowDataset's own names: say which config key
            raise GraphdynError(exc.problem, path=exc.path, field=f"data.{exc.field}") from None
        raise
    check_windows(name, splits, window)
    return splits


def check_windows(name: str, splits: DataSplits, window: Window) -> None:
    """Every split has the requested ``T`` and ``delta`` and at least one window."""
    for split in SPLIT_NAMES:
        ds = getattr(splits, split)
        for key in ("T", "delta"):
            want, got = getattr(window, key), getattr(ds, key)
            if want is not None and got != want:
                raise GraphdynError(f"the {name} data cannot honour {key}={want}: its {split} windows have {key}={got}", field=f"data.{key}")
        if len(ds) == 0:
            raise GraphdynError(
                f"windows of T={ds.T} frames spaced delta={ds.delta} (T*delta = {ds.T * ds.delta}) leave the {split} split of the "
                f"{name} data empty ({ds.traj.n_frames} frames per run); lower data.T / data.delta",
                field="data.T",
            )
