"""The ``datasets`` fixture: small datasets of every kind, built once per session."""

from __future__ import annotations

import pytest
from rollout_cases import build

from graphdyn.data.registry import DataSplits


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """``datasets(kind) -> DataSplits``, each built once per session."""
    cache: dict[str, DataSplits] = {}

    def get(kind: str) -> DataSplits:
        if kind not in cache:
            cache[kind] = build(kind, tmp_path_factory)
        return cache[kind]

    return get
