"""graphdyn: learn the dynamics of physical systems with graph neural networks.

The public surface is small and re-exported here; implementation modules may move.
"""

__version__ = "0.1.0"

from graphdyn.data.trajectory import Trajectory  # noqa: E402
from graphdyn.data.windows import Batch, WindowDataset  # noqa: E402
from graphdyn.errors import GraphdynError  # noqa: E402

__all__ = ["Trajectory", "WindowDataset", "Batch", "GraphdynError", "__version__"]
