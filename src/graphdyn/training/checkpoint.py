"""Self-describing checkpoints: weights + resolved config + data description + version.

Two files carry the same description:

* ``model.pt``, written by graphdyn at the end of a run: a plain dictionary of tensors,
  strings and numbers (loadable with ``torch.load(weights_only=True)``)::

      format "graphdyn.checkpoint", format_version 1, graphdyn_version,
      config (the resolved RunConfig), data (description incl. DataInfo), model
      {name, params}, state_dict (the LearnedSimulator's), metrics

* Lightning's ``best.ckpt`` (best validation loss), whose ``graphdyn`` entry holds the same
  description and whose ``state_dict`` holds the weights under ``simulator.``.

:func:`load_checkpoint` reads either and rebuilds the simulator anywhere (CPU by default),
without the code layout being pickled.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graphdyn import __version__
from graphdyn.data.registry import DataSplits, Window, build_dataset
from graphdyn.errors import GraphdynError
from graphdyn.io import atomic_path
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.simulator import LearnedSimulator

FORMAT = "graphdyn.checkpoint"
FORMAT_VERSION = 1


def make_meta(config: dict[str, Any], data: dict[str, Any], info: DataInfo, model_name: str, model_params: dict[str, Any]) -> dict[str, Any]:
    """The description stored in every checkpoint."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "graphdyn_version": __version__,
        "config": config,
        "data": data,
        "info": info.to_dict(),
        "model": {"name": model_name, "params": model_params},
    }


def save_checkpoint(path: str | Path, simulator: LearnedSimulator, meta: dict[str, Any], metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt`` atomically."""
    payload = dict(meta)
    payload["state_dict"] = {k: v.detach().cpu() for k, v in simulator.state_dict().items()}
    payload["metrics"] = metrics or {}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


@dataclass
class LoadedModel:
    """A simulator rebuilt from a checkpoint, with everything that describes it."""

    simulator: LearnedSimulator
    config: dict[str, Any]
    data: dict[str, Any]
    info: DataInfo
    metrics: dict[str, Any]
    path: Path

    def build_data(self, seed: int | None = None) -> DataSplits:
        """Rebuild the run's dataset (same source, options, window and seed)."""
        cfg = self.config["data"]
        window = Window(T=self.info.T, delta=cfg.get("delta") or self.data.get("window", {}).get("delta"))
        return build_dataset(cfg["source"], cfg.get("options", {}), window, self.config["seed"] if seed is None else seed)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Load ``model.pt`` or a Lightning ``.ckpt`` written by graphdyn."""
    path = Path(path)
    if not path.exists():
        raise GraphdynError("checkpoint not found", path=path)
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except (zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise GraphdynError(f"not a readable checkpoint ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})", path=path) from None
    if not isinstance(raw, dict):
        raise GraphdynError("not a graphdyn checkpoint", path=path)
    if "graphdyn" in raw:  # Lightning checkpoint
        meta = raw["graphdyn"]
        prefix = "simulator."
        state = {k[len(prefix):]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)}
        metrics = {}
    else:
        meta, state, metrics = raw, raw.get("state_dict"), raw.get("metrics", {})
    if meta.get("format") != FORMAT or state is None:
        raise GraphdynError("not a graphdyn checkpoint (no 'graphdyn.checkpoint' description)", path=path, field="format")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise GraphdynError(f"checkpoint format_version {meta['format_version']} is newer than this graphdyn", path=path)
    info = DataInfo(**meta["info"])
    model = build_model(meta["model"]["name"], meta["model"]["params"], info,
                        backend=(meta.get("config") or {}).get("model", {}).get("backend"))
    simulator = LearnedSimulator(model)
    try:
        simulator.load_state_dict(state)
    except RuntimeError as exc:
        raise GraphdynError(f"weights do not fit the model ({str(exc).splitlines()[0]})", path=path, field="state_dict") from None
    simulator.eval()
    return LoadedModel(simulator=simulator, config=meta["config"], data=meta["data"], info=info, metrics=metrics, path=path)
