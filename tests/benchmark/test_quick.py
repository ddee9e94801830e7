"""The built-in ``quick`` benchmark end to end (minutes: kept out of the default suite)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tblite")


@pytest.mark.slow
def test_quick_ranks_estag_then_st_egnn_then_copy_last_on_the_molecule(run_harness, tmp_path):
    out = tmp_path / "quick"
    proc = run_harness("quick", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert all(c["status"] == "completed" for c in cells)
    mse = {m: [c["test_mse"] for c in cells if c["dataset"] == "ethanol" and c["model"] == m] for m in ("estag", "st_egnn", "pt_t")}
    assert max(mse["estag"]) < min(mse["st_egnn"]) and max(mse["st_egnn"]) < min(mse["pt_t"])  # every seed, not just the means
    assert "| ESTAG | **" in proc.stdout  # the table is printed
