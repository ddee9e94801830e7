"""The harness end to end: resumable after SIGKILL, parallel, missing data, divergence.

The end-to-end tests run ``graphdyn benchmark`` as a user does (a fresh process, cells in
their own processes) on tiny charged-particle data; each costs a few process start-ups.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench_helpers import TINY_CHARGED, TINY_CONFIG, harness_env
from graphdyn.benchmark.cell import exclusive
from graphdyn.benchmark.runner import cell_state, run_benchmark
from graphdyn.benchmark.spec import load_spec
from graphdyn.errors import GraphdynError
from graphdyn.io import write_json


def read_rows(out):
    with open(out / "results.csv") as f:
        return {(r["dataset"], r["model"]): r for r in csv.DictReader(f)}


def test_killed_harness_reruns_without_retraining_finished_cells(write_spec, bench_cmd, run_harness, tmp_path):
    slow = {"name": "egnn", "params": {"hidden": 8}, "config": {"training": {"epochs": 40}}}
    spec = write_spec({"seeds": [1], "config": TINY_CONFIG, "datasets": {"charged": TINY_CHARGED}, "models": ["pt_t", slow]})
    out = tmp_path / "out"
    first = out / "cells/charged/pt_t/seed1"
    second = out / "cells/charged/egnn/seed1"
    proc = subprocess.Popen(bench_cmd(str(spec), "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=harness_env())
    try:
        deadline = time.monotonic() + 300
        while not (second / "checkpoints" / "last.ckpt").exists():  # the second cell is mid-training
            assert proc.poll() is None, "the harness finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (first / "results.json").exists() and not (second / "results.json").exists()
    stamp = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    rerun = run_harness(str(spec), "--out", str(out), "--jobs", "2")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "skipped charged / pt_t / seed 1: finished earlier" in rerun.stdout
    assert "resume charged / egnn / seed 1" in rerun.stdout and "2 at a time" in rerun.stdout
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp  # not retrained, not rewritten
    outcome = json.loads((second / "outcome.json").read_text())
    assert outcome["status"] == "completed" and outcome["resumed"] is True and outcome["epochs"] == 40
    rows = read_rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {("charged", "pt_t"): "ok", ("charged", "egnn"): "ok"}
    assert "| pt_t |" in rerun.stdout  # the table is printed (markdown when not on a terminal)
    assert all((out / f).exists() for f in ("results.md", "results.json", "results.png", "spec.yaml"))

    lines: list[str] = []
    summary = run_benchmark(load_spec(spec), out, echo=lines.append)  # once more: nothing left to train
    assert sum("] skipped " in ln for ln in lines) == 2 and not any("] start " in ln for ln in lines)
    assert [r.status for r in summary.results] == ["completed", "completed"] and all(r.skipped for r in summary.results)


def test_missing_data_and_divergence_leave_the_other_cells_running(write_spec, run_harness, tmp_path):
    fake = tmp_path / "no_md_extra" / "tblite"  # an installation without the md extra
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('tblite is not installed here')\n")
    spec = write_spec({
        "seeds": [1],
        "config": TINY_CONFIG,
        "datasets": {
            "charged": TINY_CHARGED,
            "aspirin": {"source": "md17", "options": {"molecule": "aspirin", "data_dir": str(tmp_path / "empty")}},
            "mol": {"source": "md17", "options": {"skip": 120}, "generate": {"molecule": "ethanol", "steps": 400}},
        },
        "models": ["pt_t", {"name": "egnn", "key": "egnn_huge_lr", "params": {"hidden": 8}, "config": {"training": {"lr": 1.0e12, "epochs": 3}}}],
    })
    out = tmp_path / "out"
    proc = run_harness(str(spec), "--out", str(out), "--jobs", "2", env=harness_env(tmp_path / "no_md_extra"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    aspirin = [ln for ln in lines if ln.startswith("missing data: aspirin:")]
    assert len(aspirin) == 1 and "aspirin_dft.npz" in aspirin[0] and str(tmp_path / "empty") in aspirin[0]
    assert "graphdyn data download md17 --molecule aspirin" in aspirin[0]
    mol = [ln for ln in lines if ln.startswith("missing data: mol:")]
    assert len(mol) == 1 and "pip install graphdyn[md]" in mol[0]
    rows = read_rows(out)
    assert rows[("charged", "pt_t")]["status"] == "ok"
    assert rows[("aspirin", "pt_t")]["status"] == rows[("mol", "egnn_huge_lr")]["status"] == "missing_data"
    assert rows[("charged", "egnn_huge_lr")]["status"] == "diverged"
    md = (out / "results.md").read_text()
    assert "diverged (epoch 1)" in md and "missing data" in md and "nan" not in md.lower()
    assert "diverged charged / egnn_huge_lr / seed 1 at epoch 1" in proc.stdout
    assert not (out / "cells" / "aspirin").exists()  # no process started for data that is not there


def test_changed_cells_stop_the_run_unless_asked_to_retrain(write_spec, tmp_path):
    spec = load_spec(write_spec({"config": TINY_CONFIG, "datasets": {"charged": TINY_CHARGED}, "models": ["pt_t"]}))
    cell = spec.cells()[0]
    cell_dir = tmp_path / "out" / cell.rel_dir
    write_json(cell_dir / "cell.json", {"fingerprint": "0" * 16})
    write_json(cell_dir / "results.json", {"status": "completed", "test": {"pos_mse": 1.0}})
    assert cell_state(cell_dir, cell.fingerprint) == "changed"
    with pytest.raises(GraphdynError, match=r"1 finished cell\(s\) .*charged / pt_t / seed 1.*--rerun-changed"):
        run_benchmark(spec, tmp_path / "out", echo=lambda line: None)
    write_json(cell_dir / "cell.json", {"fingerprint": cell.fingerprint})
    assert cell_state(cell_dir, cell.fingerprint) == "finished"
    (cell_dir / "results.json").unlink()
    assert cell_state(cell_dir, cell.fingerprint) == "new"
    (cell_dir / "checkpoints").mkdir()
    (cell_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert cell_state(cell_dir, cell.fingerprint) == "interrupted"


def test_a_folder_in_use_is_refused(write_spec, tmp_path):
    spec = load_spec(write_spec({"config": TINY_CONFIG, "datasets": {"charged": TINY_CHARGED}, "models": ["pt_t"]}))
    (tmp_path / "out").mkdir()
    with exclusive(tmp_path / "out" / ".lock") as held:
        assert held
        with pytest.raises(GraphdynError, match=f"another graphdyn benchmark \\(process {os.getpid()}\\)"):
            run_benchmark(spec, tmp_path / "out", echo=lambda line: None)


def test_cli_bad_spec_is_one_line_and_exit_code_2(write_spec, monkeypatch, capsys):
    from graphdyn.cli.app import main

    for spec, problem in ((str(write_spec({"datasets": {"charged": TINY_CHARGED}, "models": ["pt_t"], "sedes": [1]})), "unknown key 'sedes'"),
                          ("no_such_spec", "built-in: ")):
        monkeypatch.setattr(sys, "argv", ["graphdyn", "benchmark", spec])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and problem in err
