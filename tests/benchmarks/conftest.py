"""Running a benchmark script as a user would: a fresh process, its JSON output read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_script():
    """``run_script(script, *args, env=None)`` -> the finished process (output captured as text)."""

    def run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                              timeout=600)

    return run


@pytest.fixture
def run_benchmark(tmp_path, run_script):
    """``run_benchmark(script, *args)`` -> the dict the script wrote with ``--json``."""

    def run(script: str, *args: str) -> dict:
        out = tmp_path / "result.json"
        proc = run_script(script, *args, "--json", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(out.read_text())

    return run
