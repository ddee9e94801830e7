"""``graphdyn train``: output fit for logs, --run-dir and --resume, divergence (exit code 3)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from graphdyn.training.module import DynamicsModule

TINY = ["--set", "data.options.n_train=100", "--set", "data.options.n_val=20", "--set", "data.options.n_test=20",
        "--set", "training.batch_size=50", "--set", "eval.rollout_steps=5", "--set", "eval.rollout_starts=2",
        "--set", "model.params.hidden=8", "--set", "training.threads=1"]


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """Figures cost a second per run; test_core_commands.py checks them."""
    from graphdyn.training import run as run_mod

    for name in ("loss_curves", "rollout_figure", "error_vs_step"):
        monkeypatch.setattr(run_mod.plots, name, lambda *a, **k: None)


EPOCH_LINE = re.compile(r"^epoch (\d+)/3  train_loss \S+(  val_loss \S+)?  \d+\.\d\d s$")


def test_not_a_terminal_one_line_per_epoch(tmp_path, run_cli):
    proc = run_cli("train", "--epochs", "3", "--run-dir", str(tmp_path / "run"), *TINY)
    assert proc.code == 0, proc.err
    assert "\r" not in proc.err + proc.out
    lines = proc.err.splitlines()
    assert [int(EPOCH_LINE.match(ln).group(1)) for ln in lines] == [1, 2, 3], proc.err
    assert all("val_loss" in ln for ln in lines)
    assert proc.out.splitlines()[0] == f"run folder: {tmp_path / 'run'}"


def test_val_loss_on_the_epochs_that_validate(tmp_path, run_cli):
    proc = run_cli("train", "--epochs", "3", "--run-dir", str(tmp_path / "a"), "--set", "training.val_every=2", *TINY)
    assert proc.code == 0, proc.err
    assert ["val_loss" in ln for ln in proc.err.splitlines()] == [False, True, False]


def test_quiet_prints_nothing_per_epoch(tmp_path, run_cli):
    proc = run_cli("train", "--epochs", "3", "--run-dir", str(tmp_path / "b"), "--quiet", *TINY)
    assert proc.code == 0 and proc.err == ""


def test_a_terminal_gets_the_progress_bar(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    proc = run_cli("train", "--epochs", "2", "--run-dir", str(tmp_path / "run"), *TINY)
    assert proc.code == 0, proc.err
    assert "\r" in proc.err and "\r" not in proc.out and not EPOCH_LINE.match(proc.err.splitlines()[0])


def test_divergence_exits_with_code_3_and_one_line(tmp_path, run_cli):
    run_dir = tmp_path / "run"
    proc = run_cli("train", "--epochs", "3", "--run-dir", str(run_dir), "--quiet", "--set", "training.lr=1e6", *TINY)
    assert proc.code == 3
    lines = proc.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.err
    assert re.fullmatch(r"graphdyn: error: training diverged: loss is (nan|inf) at epoch 1, step \d+; no checkpoint yet", lines[0]), lines[0]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "diverged" and lines[0].endswith(results["message"])


class Killed(BaseException):
    pass


def test_resume_continues_an_interrupted_run(tmp_path, run_cli, monkeypatch):
    run_dir = tmp_path / "run"
    original = DynamicsModule.training_step

    def step(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise Killed
        return original(self, batch, batch_idx)

    with monkeypatch.context() as m:
        m.setattr(DynamicsModule, "training_step", step)
        with pytest.raises(Killed):
            run_cli("train", "--epochs", "3", "--run-dir", str(run_dir), "--quiet", *TINY)
    proc = run_cli("train", "--resume", str(run_dir))
    assert proc.code == 0, proc.err
    assert [ln.split()[1] for ln in proc.err.splitlines()] == ["2/3", "3/3"]  # epoch 1 is not trained again
    results = json.loads((run_dir / "results.json").read_text())
    assert results["fit"]["resumed_from_epoch"] == 1 and results["fit"]["epochs"] == 3
    proc = run_cli("train", "--resume", str(run_dir))
    assert proc.code == 2 and "finished already" in proc.err and len(proc.err.splitlines()) == 1


@pytest.mark.parametrize("extra", [["notebook_acc"], ["--set", "training.lr=1"], ["--epochs", "2"], ["--seed", "0"], ["--run-dir", "x"]])
def test_resume_takes_no_config(tmp_path, run_cli, extra):
    proc = run_cli("train", "--resume", str(tmp_path), *extra)
    assert proc.code == 2 and len(proc.err.splitlines()) == 1
    assert "--resume" in proc.err and "drop" in proc.err


def test_run_dir_holding_a_run_is_refused(tmp_path, run_cli):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "notes.txt").write_text("other files are fine\n")
    proc = run_cli("train", "--run-dir", str(tmp_path), "--epochs", "1", *TINY)
    assert proc.code == 2 and "holds a run already (config.yaml)" in proc.err and len(proc.err.splitlines()) == 1


@pytest.mark.parametrize("env_value, expect_set", [(None, True), ("0", False)])
def test_train_command_keeps_freed_memory_unless_switched_off(tmp_path, run_cli, monkeypatch, env_value, expect_set):
    """``graphdyn train`` (a program entry point) sets glibc's malloc options before training;
    GRAPHDYN_KEEP_MEMORY=0 turns that off. The library's train() itself never does (tests/training/test_memory.py)."""
    from types import SimpleNamespace

    from graphdyn.training import memory
    from graphdyn.training import run as run_mod

    calls = []
    monkeypatch.setattr(memory, "_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    monkeypatch.delenv(memory.ENV, raising=False)
    if env_value is not None:
        monkeypatch.setenv(memory.ENV, env_value)
    seen_at_train = []

    def fake_train(config, **kwargs):
        seen_at_train.append(list(calls))
        return SimpleNamespace(metrics={}, status="completed", run_dir=tmp_path, simulator=None, message=None)

    monkeypatch.setattr(run_mod, "train", fake_train)
    proc = run_cli("train", "--epochs", "1", "--run-dir", str(tmp_path / "run"), "--quiet", *TINY)
    assert proc.code == 0, proc.err
    expected = [(memory.M_MMAP_MAX, 0), (memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD)] if expect_set else []
    assert seen_at_train == [expected]  # set before training starts
