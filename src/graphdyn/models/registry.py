"""The one model registry: a name in a config -> a model class, imported lazily.

Besides the models themselves, the registry holds *named variants*: a registered model with
some parameters preset (``egnn_s`` is EGNN on the first observed frame, ``estag_no_edft`` is
ESTAG without EDFT). A config's ``model.params`` apply on top of a variant's presets, so the
paper's baselines and ablations are plain model names in a config or a benchmark spec.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo, DynamicsModel
from graphdyn.ops.backend import configure

# name -> "module:Class". Add a model by adding its file and one line here.
_MODELS: dict[str, str] = {
    "gnn": "graphdyn.models.interaction_gnn:InteractionGNN",
    "egnn": "graphdyn.models.egnn:EGNN",
    "estag": "graphdyn.models.estag:ESTAG",
    "copy_last": "graphdyn.models.copy_last:CopyLast",
    "st_gnn": "graphdyn.models.st_gnn:STGNN",
    "st_egnn": "graphdyn.models.st_egnn:STEGNN",
    "st_gmn": "graphdyn.models.st_gmn:STGMN",
    "st_tfn": "graphdyn.models.st_tfn:STTFN",
    "st_se3tr": "graphdyn.models.st_se3tr:STSE3Transformer",
    "eqmotion": "graphdyn.models.eqmotion:EqMotion",
    "stgcn": "graphdyn.models.stgcn:STGCN",
    "aglstan": "graphdyn.models.aglstan:AGLSTAN",
    "stag_neq": "graphdyn.models.stag_neq:STAGNonEquivariant",
}

# name -> (registered model, preset params). The paper's single-frame rows (spec section 5:
# s = frame 0, m = frame 4, the 5th of 10, t = the last) and ESTAG's ablations.
_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "pt_s": ("copy_last", {"frame": 0}),
    "pt_m": ("copy_last", {"frame": 4}),
    "pt_t": ("copy_last", {"frame": -1}),
    "egnn_s": ("egnn", {"frame": 0}),
    "egnn_m": ("egnn", {"frame": 4}),
    "egnn_t": ("egnn", {"frame": -1}),
    "estag_no_edft": ("estag", {"edft": False}),
    "estag_no_etm": ("estag", {"etm": False}),
    "estag_no_mask": ("estag", {"causal_mask": False}),
    "estag_softmax_pool": ("estag", {"pooling": "softmax"}),
}


def available_models(*, variants: bool = True) -> list[str]:
    """Registered model names, and (``variants``) the named variants."""
    return sorted(_MODELS) + (sorted(_VARIANTS) if variants else [])


def resolve_model(name: str) -> tuple[str, dict[str, Any]]:
    """``(registered model, preset params)`` for a model or variant name."""
    if name in _VARIANTS:
        base, preset = _VARIANTS[name]
        return base, dict(preset)
    if name in _MODELS:
        return name, {}
    raise GraphdynError(f"unknown model {name!r}; available: {', '.join(available_models())}", field="model.name")


def model_class(name: str) -> type[DynamicsModel]:
    """The class behind a model or variant name."""
    base, _ = resolve_model(name)
    module, cls = _MODELS[base].split(":")
    return getattr(importlib.import_module(module), cls)


def layout_of(info: DataInfo) -> str:
    """``"single"`` (one D-vector per node) or ``"multi"`` (C D-vectors per node)."""
    return "single" if info.channels is None else "multi"


def build_model(name: str, params: dict[str, Any], info: DataInfo, backend: str | None = None) -> DynamicsModel:
    """Instantiate a registered model or variant; invalid or unknown params, or data of a
    layout the model does not take, raise GraphdynError. ``backend`` picks the implementation
    of the hot ops once for the whole model (:func:`graphdyn.ops.configure`; None:
    ``$GRAPHDYN_BACKEND``, else ``"auto"``)."""
    cls = model_class(name)
    _, preset = resolve_model(name)
    layout = layout_of(info)
    if layout not in cls.layouts:
        what = "single-channel data (one vector per node)" if cls.layouts == ("single",) else "multi-channel data"
        got = f"{info.channels} coordinate channels per node" if info.channels is not None else "one coordinate vector per node"
        raise GraphdynError(f"model {name!r} takes {what}; this data has {got}", field="model.name")
    try:
        p = cls.Params(**{**preset, **(params or {})})
    except ValidationError as exc:
        raise GraphdynError(_first_error(exc, prefix="model.params"), field="model.params") from None
    model = cls(info, p)
    try:
        configure(model, backend)
    except (ValueError, RuntimeError) as exc:
        raise GraphdynError(str(exc), field="model.backend") from None
    return model


def _first_error(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    return f"'{loc}': {err['msg']}"
