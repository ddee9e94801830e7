"""Models: one file per model, one registry (:mod:`graphdyn.models.registry`)."""

from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.models.registry import available_models, build_model, model_class

__all__ = ["DataInfo", "DynamicsModel", "Params", "build_model", "model_class", "available_models"]
