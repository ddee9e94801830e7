"""``graphdyn check-equivariance``: exit 0 for an equivariant checkpoint, 1 for a broken one, 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


SPRINGS_3D = {"n_masses": 4, "dim": 3, "graph": "ring", "n_train": 6, "n_val": 3, "n_test": 5}




def make_checkpoint(tmp_path: Path, model: str, params: dict, T: int = 2) -> Path:
    """An untrained checkpoint written by graphdyn's own checkpoint API on 3-D springs."""
    run = pytest.importorskip("graphdyn.training.run")
    from graphdyn.training.checkpoint import save_checkpoint
    from graphdyn.training.config import parse_config

    cfg = parse_config({
        "seed": 0,
        "data": {"source": "springs", "options": SPRINGS_3D, "T": T},
        "model": {"name": model, "params": params},
    })
    torch.manual_seed(0)
    prep = run.prepare(cfg)
    return save_checkpoint(tmp_path / f"{model}.pt", prep.simulator, prep.meta)


def test_equivariant_checkpoint_passes(tmp_path, run_cli):
    ckpt = make_checkpoint(tmp_path, "estag", {"hidden": 8, "layers": 1})
    code, out, err = run_cli("check-equivariance", str(ckpt), "--steps", "3", "--batch-size", "2")
    assert code == 0, out + err
    for token in ("x@1", "x@3", "v@3", "x worst", "rotation", "permutation", "passed"):
        assert token in out
    assert "(" in out  # ESTAG does not declare per-frame translations: reported only


def test_non_equivariant_checkpoint_fails_with_exit_1(tmp_path, run_cli):
    ckpt = make_checkpoint(tmp_path, "gnn", {"hidden": 8, "target": "acceleration"}, T=1)
    code, out, _ = run_cli("check-equivariance", str(ckpt), "--steps", "15", "--batch-size", "2")
    assert code == 0 and "(" in out  # it declares node relabelling only: rotations are reported, not asserted
    code, out, _ = run_cli("check-equivariance", str(ckpt), "--steps", "15", "--batch-size", "2", "--require", "rotation")
    assert code == 1
    assert "FAIL" in out and "FAILED" in out
    assert "x@15" in out and "x@03" not in out  # long rollouts show log-spaced steps
    assert "does not claim" in out


def test_bad_input_exits_2(tmp_path, run_cli):
    code, _, err = run_cli("check-equivariance", str(tmp_path / "missing.pt"))
    assert code == 2 and "missing.pt" in err and "not found" in err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    code, _, err = run_cli("check-equivariance", str(garbage))
    assert code == 2 and "garbage.pt" in err
    code, _, _ = run_cli("check-equivariance", str(garbage), "--steps", "0")
    assert code == 2


def test_checkpoint_from_graphdyn_train(tmp_path, run_cli):
    """End to end: a one-epoch `graphdyn train` run, then its model.pt is checked."""
    code, out, err = run_cli(
        "train", "--model", "estag", "--dataset", "springs", "--epochs", "1", "--output-dir", str(tmp_path), "--quiet",
        *[f"--set=data.options.{k}={v}" for k, v in SPRINGS_3D.items()],
        "--set=data.T=2", "--set=model.params.hidden=8", "--set=eval.rollout_steps=2", "--set=training.batch_size=4",
    )
    assert code == 0, out + err
    ckpt = next(tmp_path.glob("*/model.pt"))
    code, out, err = run_cli("check-equivariance", str(ckpt), "--steps", "2")
    assert code == 0, out + err
