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


def pytest_sessionstart(session):
    """Under ``GRAPHDYN_REQUIRE_FIXTURES=1`` (CI), missing shared fixtures fail the run instead of
    skipping the parity tests; under ``GRAPHDYN_REQUIRE_NATIVE=1`` (make test), so do kernels that
    did not build."""
    from graphdyn import native
    from shared_fixtures import FIXTURES, REQUIRED

    if REQUIRED and not FIXTURES.is_dir():
        pytest.exit(f"GRAPHDYN_REQUIRE_FIXTURES is set and the shared fixtures are missing: no folder {FIXTURES}", returncode=1)
    if native.required():
        try:
            native.load()
        except RuntimeError as exc:
            pytest.exit(str(exc), returncode=1)
