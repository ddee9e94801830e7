"""The trajectory type and its ``.npz`` format, at its older import path.

:class:`Trajectory` lives in :mod:`graphdyn.trajectory`, a module that imports neither
:mod:`graphdyn.data` nor :mod:`graphdyn.physics`, so the simulators (which produce
trajectories) and the datasets (which read them) share it without importing each other.
"""

from graphdyn.trajectory import FORMAT, FORMAT_VERSION, Trajectory

__all__ = ["FORMAT", "FORMAT_VERSION", "Trajectory"]
