"""A non-finite training loss stops the run at once: one line, the best checkpoint kept and
evaluated, results.json with status "diverged", no NaN anywhere in the files."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from graphdyn.simulator import LearnedSimulator
from graphdyn.training import run as run_mod
from graphdyn.training.config import load_config

TINY = ["data.options.n_train=100", "data.options.n_val=20", "data.options.n_test=20", "training.batch_size=30",
        "training.epochs=5", "training.threads=1", "model.params.hidden=8", "eval.rollout_steps=5", "eval.rollout_starts=2"]
LINE = re.compile(r"^training diverged: loss is (nan|inf) at epoch (\d+), step (\d+); (no checkpoint yet|kept the best checkpoint \(epoch (\d+)\))$")


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path.name} holds a bare {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_exploding_learning_rate_diverges_with_one_line(tmp_path):
    result = run_mod.train(load_config(None, [*TINY, "training.lr=1e6"]), quiet=True, run_dir=tmp_path / "run")
    assert result.status == "diverged"
    match = LINE.match(result.message)
    assert match, result.message
    results = _strict_json(tmp_path / "run" / "results.json")
    assert results["status"] == "diverged" and results["message"] == result.message
    value, epoch, step = match.group(1), int(match.group(2)), int(match.group(3))
    assert results["diverged"] == {"epoch": epoch, "step": step, "value": value}
    # Adam at lr 1e6: the second step's loss overflows; no validation has happened yet
    assert (epoch, step) == (1, 2) and match.group(4) == "no checkpoint yet"
    assert "test" not in results and not (tmp_path / "run" / "model.pt").exists()
    assert results["fit"]["epochs"] == 0 and results["fit"]["optimizer_steps"] == 1
    report = (tmp_path / "run" / "report.md").read_text()
    assert "diverged" in report and not re.search(r"\bnan\b|\binf\b", report.replace(result.message, ""), re.I)


def test_divergence_after_a_checkpoint_keeps_and_evaluates_the_best(tmp_path, monkeypatch):
    """A NaN loss injected at the 10th training step (epoch 3, 4 steps an epoch): the weights of
    the best validation so far (epoch 2) are evaluated and saved."""
    original = LearnedSimulator.loss
    calls = {"n": 0}

    def loss(self, batch, *args, **kwargs):
        out = original(self, batch, *args, **kwargs)
        if torch.is_grad_enabled():  # training steps only, not validation
            calls["n"] += 1
            if calls["n"] == 10:
                return out * float("nan")
        return out

    monkeypatch.setattr(LearnedSimulator, "loss", loss)
    run_dir = tmp_path / "run"
    result = run_mod.train(load_config(None, TINY), quiet=True, run_dir=run_dir)
    assert result.message == "training diverged: loss is nan at epoch 3, step 10; kept the best checkpoint (epoch 2)"
    results = _strict_json(run_dir / "results.json")
    assert results["status"] == "diverged" and results["diverged"] == {"epoch": 3, "step": 10, "value": "nan"}
    assert results["fit"]["best_epoch"] == 2 and results["fit"]["epochs"] == 2
    assert math.isfinite(results["test"]["pos_mse"])
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    saved = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    assert best["epoch"] == 1 and all(torch.equal(best["state_dict"][f"simulator.{k}"], v) for k, v in saved.items())
    assert all(torch.isfinite(p).all() for p in result.simulator.parameters())
    assert "best checkpoint (epoch 2)" in (run_dir / "report.md").read_text()
    with pytest.raises(run_mod.GraphdynError, match="finished already.*diverged"):
        run_mod.train(None, run_dir=run_dir, resume=True)


def test_non_finite_validation_loss_is_never_the_best(tmp_path, monkeypatch):
    """Lightning's ModelCheckpoint would save a first validation of inf as the best."""
    original = LearnedSimulator.loss

    def loss(self, batch, *args, **kwargs):
        out = original(self, batch, *args, **kwargs)
        return out if torch.is_grad_enabled() else out * float("inf")

    monkeypatch.setattr(LearnedSimulator, "loss", loss)
    monkeypatch.setattr(run_mod.plots, "loss_curves", lambda *a, **k: None)
    result = run_mod.train(load_config(None, [*TINY, "training.epochs=2", "eval.rollout_steps=1"]), quiet=True, run_dir=tmp_path / "run")
    assert result.status == "completed"
    assert not (tmp_path / "run" / "checkpoints" / "best.ckpt").exists()
    assert result.metrics["fit"]["best_val_loss"] is None and result.metrics["fit"]["best_epoch"] is None
