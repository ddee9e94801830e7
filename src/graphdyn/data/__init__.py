"""Data: the Trajectory type and its ``.npz`` format, windowing and dense batching, datasets."""

from graphdyn.data.trajectory import Trajectory
from graphdyn.data.windows import Batch, WindowDataset, WindowLoader

__all__ = ["Trajectory", "WindowDataset", "WindowLoader", "Batch"]
