"""Shared test fixtures: one torch thread, seeded RNGs, a tiny spring-chain trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphdyn import Trajectory
from spring_chain import notebook_snapshots

# The suite's tensors are tiny: one thread is faster than two, and immune to a busy machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def snapshots() -> Trajectory:
    return notebook_snapshots(64)
