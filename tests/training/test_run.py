"""A whole (tiny) run: files written, checkpoint round trip, unknown model/data keys."""

import json

import numpy as np
import pytest
import torch

from graphdyn import GraphdynError
from graphdyn.training.checkpoint import load_checkpoint
from graphdyn.training.config import load_config
from graphdyn.training.run import prepare, train

TINY = [
    "data.options.n_train=200", "data.options.n_val=50", "data.options.n_test=50",
    "training.epochs=3", "training.batch_size=50", "training.progress=false",
    "eval.rollout_steps=20", "eval.rollout_starts=4", "model.params.target=acceleration",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(load_config(None, TINY + [f"output_dir={out}"]), quiet=True)


def test_run_folder_holds_everything(tiny_run):
    d = tiny_run.run_dir
    for name in ("config.yaml", "metrics.csv", "model.pt", "results.json", "report.md", "checkpoints/best.ckpt",
                 "checkpoints/last.ckpt", "figures/loss.png", "figures/rollout.png", "figures/error_vs_step.png"):
        assert (d / name).exists(), name
    results = json.loads((d / "results.json").read_text())
    assert results["status"] == "completed" and "diverged" not in results
    assert results["test"]["samples"] == 50 and results["rollout"]["steps"] == 20
    fit = results["fit"]
    assert fit["epochs"] == 3 and fit["optimizer_steps"] == 12 and fit["resumed_from_epoch"] == 0
    assert fit["seconds_per_epoch"] == pytest.approx(fit["fit_seconds"] / 3)
    assert fit["peak_memory_kind"] == "process_max_rss" and 50 < fit["peak_memory_mb"] < 100_000
    assert results["parameters"] == sum(p.numel() for p in tiny_run.simulator.parameters())
    assert torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2  # after the third epoch
    assert not list(d.rglob("*.tmp*"))


@pytest.mark.parametrize("name", ["model.pt", "checkpoints/best.ckpt"])
def test_checkpoint_round_trip_predicts_identically(tiny_run, name):
    loaded = load_checkpoint(tiny_run.run_dir / name)
    assert loaded.config["model"]["name"] == "gnn" and loaded.info.n_nodes == 3
    assert loaded.data["checksum"] and loaded.config["seed"] == 0
    splits = loaded.build_data()
    batch = splits.test.batch(np.arange(10))
    with torch.no_grad():
        torch.testing.assert_close(loaded.simulator.predict(batch), tiny_run.simulator.predict(batch))
    np.testing.assert_array_equal(splits.test.traj.positions, tiny_run.splits.test.traj.positions)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(GraphdynError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(GraphdynError, match="junk.pt"):
        load_checkpoint(junk)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(GraphdynError, match="not a graphdyn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_model_and_data_keys_are_errors():
    with pytest.raises(GraphdynError, match="model.params.hiden"):
        prepare(load_config(None, ["model.params.hiden=3"]))
    with pytest.raises(GraphdynError, match="data.options.n_mass"):
        prepare(load_config(None, ["data.options.n_mass=3"]))
    with pytest.raises(GraphdynError, match="unknown model"):
        prepare(load_config(None, ["model.name=transformer9000"]))


def test_normalized_target_scale_is_the_training_std():
    prep = prepare(load_config(None, TINY + ["model.normalize_target=true", "model.params.target=velocity_change"]))
    batch = prep.splits.train.batch()
    dv = batch.target_v - batch.v[:, -1]
    assert prep.simulator.target_scale.item() == pytest.approx(dv.std().item(), rel=1e-5)
    assert prep.simulator.training_target(batch).std().item() == pytest.approx(1.0, rel=1e-4)


def test_a_last_frame_model_refuses_a_longer_window_before_building_data(tmp_path, monkeypatch):
    """notebook_acc --set data.T=5000 used to simulate 5000 frames per sample and train as if
    nothing was asked; the gnn reads the last frame only, so the option is an error."""
    from graphdyn.training import run

    def no_data(*args, **kwargs):  # the check comes first: nothing is simulated
        raise AssertionError("data built before the window was checked")

    monkeypatch.setattr(run, "build_dataset", no_data)
    cfg = load_config("notebook_acc", ["data.T=5000", f"output_dir={tmp_path}"])
    with pytest.raises(GraphdynError, match="reads the last observed frame only") as info:
        run.prepare(cfg)
    assert info.value.field == "data.T"
