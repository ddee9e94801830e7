"""Tiny benchmark specs written into tmp_path, and the harness run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench_helpers import harness_env


@pytest.fixture
def write_spec(tmp_path):
    """``write_spec(dict, name="tiny") -> path`` of a YAML spec in tmp_path."""

    def write(spec: dict, name: str = "tiny") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


@pytest.fixture
def bench_cmd():
    """The command line of ``graphdyn benchmark`` in a fresh interpreter."""

    def cmd(*args: str) -> list[str]:
        return [sys.executable, "-m", "graphdyn", "benchmark", *args]

    return cmd


@pytest.fixture
def run_harness(bench_cmd):
    """``run_harness(*args, env=None)`` -> the finished ``graphdyn benchmark`` process."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(bench_cmd(*args), capture_output=True, text=True, env=env or harness_env(), timeout=600)

    return run
