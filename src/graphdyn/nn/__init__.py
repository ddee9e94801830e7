"""Building blocks: scatter helpers, MLPs, message-passing and equivariant layers."""

from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import scatter_mean, scatter_sum

__all__ = ["MLP", "scatter_sum", "scatter_mean"]
