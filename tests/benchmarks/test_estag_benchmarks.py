"""The ESTAG step benchmark's plumbing at one step (its timings are studies, see docs/benchmarks.md):
it builds the paper-size aspirin case and reports what the docs quote."""

from __future__ import annotations

import pytest

pytest.importorskip("rdkit")  # the aspirin case builds its graph from RDKit (the `md` extra, which `make test` installs)


def test_estag_step_runs_and_reports(run_benchmark):
    r = run_benchmark("estag_step.py", "--cases", "aspirin", "--threads", "1", "--steps", "1", "--warmup", "1")
    assert (r["B"], r["T"], r["H"], r["L"]) == (100, 10, 16, 2)  # the paper's size, as the issue specifies
    (res,) = r["results"]
    assert (res["case"], res["nodes"], res["edges"], res["steps"]) == ("aspirin", 13, 60, 1)
    assert 0 < res["min_ms"] <= res["median_ms"]
