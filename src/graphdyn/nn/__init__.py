"""Building blocks users build models from: scatter helpers, MLPs, message-passing, temporal and
equivariant layers. Each layer's math and tensor shapes are in its own module's docstring.

``MLP`` and the scatter helpers are imported with the package; every other name is imported on
first use (PEP 562 ``__getattr__``), so ``import graphdyn.nn`` costs no more than ``torch`` (the
tensor-field layers need e3nn, some seconds to import) and no layer module is imported while this
package is still being initialised. Backend modules (``*_fused``, ``*_native``) are not exported.
"""

from __future__ import annotations

import importlib
from typing import Any

from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import in_degree, scatter_mean, scatter_sum

# public name -> the module of graphdyn.nn that defines it (imported on first use)
_LAZY = {
    "AdaptiveGraphConv": "adaptive_graph",
    "EDFT": "edft",
    "EGNNLayer": "egnn",
    "EqMotionLayer": "eqmotion",
    "InteractionReasoning": "eqmotion",
    "PairLinear": "eqmotion",
    "PairMLP": "eqmotion",
    "GNNLayer": "gnn_layer",
    "GraphBatchNorm": "graph_batch_norm",
    "GraphConv": "graph_conv",
    "InteractionLayer": "message_passing",
    "PerFrameNetwork": "per_frame",
    "SE3AttentionLayer": "se3_attention",
    "TemporalAttention": "temporal_attention",
    "GatedTemporalConv": "temporal_conv",
    "TemporalPooling": "temporal_pooling",
    "EdgeTensorProduct": "tensor_field_parts",
    "RadialNet": "tensor_field_parts",
    "GatedTensorFieldLayer": "tfn",
    "TFNLayer": "tfn",
    "PreNormTransformerLayer": "time_transformer",
}

__all__ = ["MLP", "scatter_sum", "scatter_mean", "in_degree", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graphdyn.nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"graphdyn.nn.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
