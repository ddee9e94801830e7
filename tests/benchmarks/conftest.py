"""Running a benchmark script as a user would: a fresh process, its JSON output read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_benchmark(tmp_path):
    """``run_benchmark(script, *args)`` -> the dict the script wrote with ``--json``."""

    def run(script: str, *args: str) -> dict:
        out = tmp_path / "result.json"
        proc = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(out.read_text())

    return run
