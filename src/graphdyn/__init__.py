"""graphdyn: learn the dynamics of physical systems with graph neural networks.

The public surface is small and re-exported here; implementation modules may move. Names
are imported on first use, so ``graphdyn --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Trajectory": "graphdyn.trajectory",
    "WindowDataset": "graphdyn.data.windows",
    "Batch": "graphdyn.data.windows",
    "GraphdynError": "graphdyn.errors",
    "LearnedSimulator": "graphdyn.simulator",
    "load_checkpoint": "graphdyn.training.checkpoint",
    "assert_equivariant": "graphdyn.testing",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'graphdyn' has no attribute {name!r}")
