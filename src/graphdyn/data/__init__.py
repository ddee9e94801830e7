"""Data: the Trajectory type and its ``.npz`` format, windowing and dense batching, datasets.

One module per dataset (``simulated``, ``md17``, ``adk``, ``mocap``); ``registry`` maps the
names used in configs to their builders.
"""
