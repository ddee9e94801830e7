"""The comparison table: aggregation over seeds, units, marks, never a bare nan, files."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from bench_helpers import TINY_CHARGED, TINY_CONFIG
from graphdyn.benchmark.runner import CellResult, RunSummary
from graphdyn.benchmark.spec import load_spec
from graphdyn.benchmark.table import build_table, fmt, fmt_mean_std, mark_column


def summary_of(spec, outcomes: dict[tuple[str, str, int], dict], missing: dict[str, str] | None = None) -> RunSummary:
    """A RunSummary whose cells hold the given outcomes (status completed unless stated)."""
    results = []
    for cell in spec.cells():
        o = outcomes.get((cell.dataset, cell.model, cell.seed))
        if o is None:
            status = "missing_data" if missing and cell.dataset in missing else "not_run"
            results.append(CellResult(cell, status, message=(missing or {}).get(cell.dataset)))
        else:
            o = {"status": "completed", "parameters": 10, "seconds_per_epoch": 0.5, "peak_memory_mb": 100.0, **o}
            results.append(CellResult(cell, o["status"], o, o.get("message")))
    return RunSummary(spec, Path("out"), results, missing or {}, 1.0)


@pytest.fixture
def md17_spec(write_spec):
    """Two MD17 columns of Table 1 (never trained here), four rows, three seeds."""
    ds = {"source": "md17", "options": {"molecule": "aspirin"}}
    return load_spec(write_spec({"published": "md17", "seeds": [1, 2, 3], "config": TINY_CONFIG,
                                 "datasets": {"aspirin": ds, "ethanol": {**ds, "options": {"molecule": "ethanol"}}},
                                 "models": ["pt_t", "egnn_t", "st_egnn", "estag"]}))


def test_mean_and_std_over_seeds_in_the_tables_units(md17_spec):
    mse = {1: 1.0e-4, 2: 2.0e-4, 3: 3.0e-4}
    table = build_table(summary_of(md17_spec, {("aspirin", "estag", s): {"test_mse": v} for s, v in mse.items()}))
    e = table.entries[("aspirin", "estag")]
    assert e.mean == pytest.approx(0.2) and e.std == pytest.approx(0.1)  # x10^-3 A^2, sample std
    assert e.published == 0.063 and e.published_mark == "best" and e.status == "ok"
    assert table.columns[0].label == "Aspirin" and table.rows[0] == ("pt_t", "PT-t")
    assert table.entry_text(e) == "**0.200 ± 0.100** (**0.063**)"


def test_best_and_second_marks_per_column_with_ties():
    from graphdyn.benchmark.table import Entry

    entries = [Entry("d", m, m, 1, mean=v, status="ok") for m, v in (("a", 0.5), ("b", 0.2), ("c", 0.2001), ("d", 0.3), ("e", 0.1))]
    entries.append(Entry("d", "f", "f", 1, mean=0.01, status="partial"))  # does not compete
    mark_column(entries)
    assert [e.mark for e in entries] == [None, "second", "second", None, "best", None]  # 0.2 and 0.2001 print alike


def test_some_seeds_diverged_all_diverged_missing_and_failed_are_named_never_nan(md17_spec):
    outcomes = {("aspirin", "pt_t", s): {"test_mse": 7e-4} for s in (1, 2, 3)}
    outcomes.update({("aspirin", "st_egnn", 1): {"test_mse": 5e-4},
                     ("aspirin", "st_egnn", 2): {"status": "diverged", "test_mse": None, "diverged_at": {"epoch": 4, "step": 17}},
                     ("aspirin", "st_egnn", 3): {"test_mse": 6e-4}})
    outcomes.update({("aspirin", "estag", s): {"status": "diverged", "test_mse": None, "diverged_at": {"epoch": 2, "step": 5}}
                     for s in (1, 2, 3)})
    outcomes.update({("aspirin", "egnn_t", s): {"status": "failed", "message": "boom"} for s in (1, 2, 3)})
    table = build_table(summary_of(md17_spec, outcomes, missing={"ethanol": "ethanol: file not found: put it there"}))
    text = table.to_markdown()
    assert "nan" not in text.lower().replace("naphth", "")
    st = table.entries[("aspirin", "st_egnn")]
    assert st.status == "partial" and st.note == "1/3 diverged (epoch 4)" and st.mean == pytest.approx(0.55) and st.mark is None
    assert table.entry_text(table.entries[("aspirin", "estag")]).startswith("diverged (epoch 2)")
    assert table.entries[("aspirin", "pt_t")].mark == "best"  # the only fully completed entry
    assert table.entry_text(table.entries[("aspirin", "egnn_t")]).startswith("failed")
    assert table.entry_text(table.entries[("ethanol", "estag")]) == "missing data (**0.099**)"
    assert "ethanol: file not found: put it there" in table.notes
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert {r["status"] for r in rows} == {"ok", "partial", "diverged", "failed", "missing_data"}
    assert all(r["mean"] == "" or math.isfinite(float(r["mean"])) for r in rows)


def test_files_are_written(md17_spec, tmp_path):
    outcomes = {(d, m, s): {"test_mse": 1e-4 * (i + 1)} for i, m in enumerate(["pt_t", "egnn_t", "st_egnn", "estag"])
                for d in ("aspirin", "ethanol") for s in (1, 2, 3)}
    table = build_table(summary_of(md17_spec, outcomes))
    paths = table.write(tmp_path)
    assert sorted(p.name for p in paths) == ["results.csv", "results.json", "results.md", "results.png"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["entries"]) == 8 and len(data["cells"]) == 24 and data["published_table"] == "md17"
    assert (tmp_path / "results.png").stat().st_size > 1000
    md = (tmp_path / "results.md").read_text()
    assert "| PT-t | **0.100 ± 0.000** (0.715) |" in md and "<u>0.200 ± 0.000</u>" in md
    assert "10 / 0.5 s / 100 MB" in md


def test_own_units_without_a_published_table(write_spec):
    spec = load_spec(write_spec({"seeds": [1], "config": TINY_CONFIG, "models": ["pt_t"],
                                 "datasets": {"charged": {**TINY_CHARGED, "scale": 1e-2, "units": "length^2", "label": "Charged"}}}))
    table = build_table(summary_of(spec, {("charged", "pt_t", 1): {"test_mse": 3e-3}}))
    e = table.entries[("charged", "pt_t")]
    assert e.mean == pytest.approx(0.3) and e.std is None and e.published is None
    assert table.header() == ["Charged (×10^-2 length^2)"] and table.entry_text(e) == "**0.300**"
    assert fmt(2.5e-5) == "0.0000250" and fmt(0.00116) == "0.00116" and fmt(3e-7) == "3e-07" and fmt(None) == "–"
    assert fmt_mean_std(0.00116, 0.000424) == "0.00116 ± 0.00042" and fmt_mean_std(0.454, 0.0) == "0.454 ± 0.000"
