"""Resumable runs: a run killed after k epochs and resumed ends exactly where an uninterrupted
one ends (weights, metrics.csv, test MSE); checkpoints are written atomically; run folders are
not overwritten; finished runs are not resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pytorch_lightning.loggers import CSVLogger

from spring_chain import notebook_snapshots
from graphdyn import GraphdynError, WindowDataset
from graphdyn.data.windows import WindowLoader
from graphdyn.training import run as run_mod
from graphdyn.training.config import load_config
from graphdyn.training.module import DynamicsModule

# 100 samples in batches of 30 (4 shuffled steps per epoch), cosine schedule and early-stopping
# state to restore, one thread so that two processes compute bit for bit the same.
TINY = ["data.options.n_train=100", "data.options.n_val=20", "data.options.n_test=20", "training.batch_size=30",
        "training.epochs=5", "training.lr_schedule=cosine", "training.patience=10", "training.threads=1",
        "model.params.hidden=8", "eval.rollout_steps=5", "eval.rollout_starts=2"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing in graphdyn handles it (see :func:`_as_if_killed`)."""


def _as_if_killed(monkeypatch) -> None:
    """Lightning flushes its loggers when a fit raises; a killed process does not."""
    monkeypatch.setattr(CSVLogger, "finalize", lambda self, status: None)


def _no_figures(monkeypatch) -> None:
    """Figures cost a second per run and are checked in test_run.py."""
    for name in ("loss_curves", "rollout_figure", "error_vs_step"):
        monkeypatch.setattr(run_mod.plots, name, lambda *a, **k: None)


@pytest.fixture
def no_figures(monkeypatch):
    _no_figures(monkeypatch)


def _config(*extra: str):
    return load_config(None, [*TINY, *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs (validation every epoch, and every second epoch)."""
    out = tmp_path_factory.mktemp("ref")
    with pytest.MonkeyPatch.context() as m:
        _no_figures(m)
        return {val_every: run_mod.train(_config(f"training.val_every={val_every}"), quiet=True, run_dir=out / str(val_every)).run_dir
                for val_every in (1, 2)}


def _kill_in_training_step(monkeypatch, epoch: int) -> None:
    """Die in the second step of epoch ``epoch`` (counting from 0): last.ckpt holds ``epoch`` epochs."""
    _as_if_killed(monkeypatch)
    original = DynamicsModule.training_step

    def step(self, batch, batch_idx):
        if self.current_epoch == epoch and batch_idx == 1:
            raise Killed
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DynamicsModule, "training_step", step)


def _kill_while_writing_last(monkeypatch, epoch: int) -> None:
    """Die while last.ckpt of epoch ``epoch`` (counting from 0) is being written: metrics.csv
    already holds that epoch, best.ckpt may too, last.ckpt still holds the epoch before."""
    _as_if_killed(monkeypatch)
    original = run_mod.AtomicCheckpointIO.save_checkpoint
    calls = {"n": 0}

    def save(self, checkpoint, path, storage_options=None):
        if Path(path).name == "last.ckpt":
            calls["n"] += 1
            if calls["n"] == epoch + 1:
                with open(Path(path).with_name(".last.ckpt.partial.tmp.ckpt"), "wb") as f:
                    f.write(b"half a checkpoint")  # what a kill mid-write leaves beside it
                raise Killed
        return original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(run_mod.AtomicCheckpointIO, "save_checkpoint", save)


def _assert_same_run(a: Path, b: Path) -> None:
    wa = torch.load(a / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(b / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["status"] == rb["status"] == "completed"
    assert ra["test"] == rb["test"] and ra["fit"]["best_val_loss"] == rb["fit"]["best_val_loss"]
    for key in ("epochs", "optimizer_steps", "best_epoch"):
        assert ra["fit"][key] == rb["fit"][key], key
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


@pytest.mark.parametrize("kill", [_kill_in_training_step, _kill_while_writing_last])
@pytest.mark.parametrize("val_every", [1, 2])
def test_killed_and_resumed_run_ends_where_the_uninterrupted_one_ends(reference, tmp_path, monkeypatch, no_figures, kill, val_every):
    run_dir = tmp_path / "run"
    cfg = _config(f"training.val_every={val_every}")
    with monkeypatch.context() as m:
        kill(m, epoch=2)
        with pytest.raises(Killed):
            run_mod.train(cfg, quiet=True, run_dir=run_dir)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # two epochs done
    assert not (run_dir / "results.json").exists()
    result = run_mod.train(None, quiet=True, run_dir=run_dir, resume=True)
    assert result.metrics["fit"]["resumed_from_epoch"] == 2 and result.metrics["fit"]["epochs"] == 5
    _assert_same_run(reference[val_every], run_dir)
    assert not list(run_dir.rglob("*.tmp*"))


def test_resume_with_the_same_config_object_and_free_keys(reference, tmp_path, monkeypatch, no_figures):
    """The API form the benchmark harness uses: the config given again, threads / progress may differ."""
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _kill_in_training_step(m, epoch=1)
        with pytest.raises(Killed):
            run_mod.train(_config("training.val_every=1"), quiet=True, run_dir=run_dir)
    with pytest.raises(GraphdynError, match="training.lr"):
        run_mod.train(_config("training.val_every=1", "training.lr=0.1"), run_dir=run_dir, resume=True)
    result = run_mod.train(_config("training.val_every=1", "training.progress=false"), quiet=True, run_dir=run_dir, resume=True)
    assert result.metrics["fit"]["resumed_from_epoch"] == 1
    _assert_same_run(reference[1], run_dir)


def test_resume_before_the_first_epoch_finished_starts_over(reference, tmp_path, monkeypatch, no_figures):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _kill_in_training_step(m, epoch=0)
        with pytest.raises(Killed):
            run_mod.train(_config("training.val_every=1"), quiet=True, run_dir=run_dir)
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    result = run_mod.train(None, quiet=True, run_dir=run_dir, resume=True)
    assert result.metrics["fit"]["resumed_from_epoch"] == 0
    _assert_same_run(reference[1], run_dir)


def test_killed_after_the_fit_resumes_with_the_evaluation(reference, tmp_path, monkeypatch, no_figures):
    run_dir = tmp_path / "run"

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(run_mod, "evaluate", killed)
        with pytest.raises(Killed):
            run_mod.train(_config("training.val_every=1"), quiet=True, run_dir=run_dir)
    result = run_mod.train(None, quiet=True, run_dir=run_dir, resume=True)
    fit = result.metrics["fit"]
    assert fit["resumed_from_epoch"] == fit["epochs"] == 5 and fit["seconds_per_epoch"] is None  # no epoch ran here
    _assert_same_run(reference[1], run_dir)


def test_finished_runs_and_occupied_folders(reference, tmp_path):
    done = reference[1]
    with pytest.raises(GraphdynError, match="finished already.*completed") as exc:
        run_mod.train(None, run_dir=done, resume=True)
    assert len(str(exc.value).splitlines()) == 1
    with pytest.raises(GraphdynError, match="holds a run already"):
        run_mod.train(_config(), run_dir=done)
    with pytest.raises(GraphdynError, match="no config.yaml"):
        run_mod.train(None, run_dir=tmp_path, resume=True)
    with pytest.raises(GraphdynError, match="not found"):
        run_mod.train(None, run_dir=tmp_path / "absent", resume=True)
    with pytest.raises(GraphdynError, match="run folder"):
        run_mod.train(_config(), resume=True)


def test_last_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous checkpoint whole and readable."""
    io = run_mod.AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise Killed

    monkeypatch.setattr(run_mod.torch, "save", broken_save)
    with pytest.raises(Killed):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_shuffle_order_depends_on_seed_and_epoch_only():
    ds = WindowDataset(notebook_snapshots(40))

    def order(loader):
        return torch.cat([b.x[:, 0, 0, 0] for b in loader])

    fresh = WindowLoader(ds, 16, shuffle=True, seed=3)
    passes = [order(fresh) for _ in range(3)]
    assert not torch.equal(passes[1], passes[2])
    late = WindowLoader(ds, 16, shuffle=True, seed=3)
    late.set_epoch(2)
    assert torch.equal(order(late), passes[2])
    other = WindowLoader(ds, 16, shuffle=True, seed=4)
    other.set_epoch(2)
    assert not torch.equal(order(other), passes[2])


@pytest.mark.slow
def test_really_killed_process_resumes(reference, tmp_path, no_figures):
    """SIGKILL to a `graphdyn train` process once last.ckpt exists, then --resume."""
    run_dir = tmp_path / "run"
    args = [a for kv in TINY + ["training.val_every=1", "training.epochs=5"] for a in ("--set", kv)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "graphdyn.cli.app", "train", "--run-dir", str(run_dir), "--quiet", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if (run_dir / "results.json").exists():
        pytest.skip("the run finished before it could be killed")
    result = run_mod.train(None, quiet=True, run_dir=run_dir, resume=True)
    assert result.metrics["fit"]["resumed_from_epoch"] >= 1
    _assert_same_run(reference[1], run_dir)
    np.testing.assert_equal(result.metrics["fit"]["epochs"], 5)
