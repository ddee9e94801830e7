"""Data: the Trajectory type (defined in :mod:`graphdyn.trajectory`, shared with
:mod:`graphdyn.physics`) and its ``.npz`` format, windowing and dense batching, datasets.

One module per dataset (``simulated``, ``md17``, ``adk``, ``mocap``); ``registry`` maps the
names used in configs to their builders.
"""
