"""The one model registry: a name in a config -> a model class, imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo, DynamicsModel

# name -> "module:Class". Add a model by adding its file and one line here.
_MODELS: dict[str, str] = {
    "gnn": "graphdyn.models.interaction_gnn:InteractionGNN",
    "egnn": "graphdyn.models.egnn:EGNN",
    "estag": "graphdyn.models.estag:ESTAG",
    "copy_last": "graphdyn.models.copy_last:CopyLast",
}


def available_models() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type[DynamicsModel]:
    if name not in _MODELS:
        raise GraphdynError(f"unknown model {name!r}; available: {', '.join(available_models())}", field="model.name")
    module, cls = _MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(name: str, params: dict[str, Any], info: DataInfo) -> DynamicsModel:
    """Instantiate a registered model; invalid or unknown params raise GraphdynError."""
    cls = model_class(name)
    try:
        p = cls.Params(**(params or {}))
    except ValidationError as exc:
        raise GraphdynError(_first_error(exc, prefix="model.params"), field="model.params") from None
    return cls(info, p)


def _first_error(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    return f"'{loc}': {err['msg']}"
