"""The checks build_dataset makes for every dataset: T and delta honoured or refused, no empty
split, errors naming data.T / data.delta."""

from __future__ import annotations

import numpy as np
import pytest

from spring_chain import notebook_snapshots
from graphdyn import GraphdynError, WindowDataset
from graphdyn.data import registry
from graphdyn.data.registry import DataSplits, Window, build_dataset
from graphdyn.physics.generate import generate
from graphdyn.physics.springs import SpringSystem


def _fake(monkeypatch, build) -> None:
    monkeypatch.setattr(registry, "dataset_builder", lambda name: build)


@pytest.mark.parametrize("window, field", [(Window(T=0), "data.T"), (Window(delta=-1), "data.delta"), (Window(T=2.5), "data.T")])
def test_window_values_are_checked_once_for_all(window, field):
    with pytest.raises(GraphdynError) as exc:
        build_dataset("springs", {}, window, seed=0)
    assert exc.value.field == field


def test_a_builder_that_ignores_T_is_refused(monkeypatch):
    """A builder that falls back to its own window instead of raising."""
    traj = notebook_snapshots(20)

    def build(options, window, seed):
        ds = WindowDataset(traj)  # T = 1 whatever was asked
        return DataSplits("fake", ds, ds, ds)

    _fake(monkeypatch, build)
    assert build_dataset("fake", {}, Window(), 0).train.T == 1
    with pytest.raises(GraphdynError, match="cannot honour T=3") as exc:
        build_dataset("fake", {}, Window(T=3), 0)
    assert exc.value.field == "data.T"
    with pytest.raises(GraphdynError, match="cannot honour delta=2") as exc:
        build_dataset("fake", {}, Window(delta=2), 0)
    assert exc.value.field == "data.delta"


def test_an_empty_split_is_an_error_naming_T(monkeypatch):
    def build(options, window, seed):
        ds = WindowDataset(notebook_snapshots(20))
        return DataSplits("fake", ds, ds.subset(np.arange(0)), ds)

    _fake(monkeypatch, build)
    with pytest.raises(GraphdynError, match="val split of the fake data empty") as exc:
        build_dataset("fake", {}, Window(), 0)
    assert exc.value.field == "data.T"


def test_window_errors_name_the_config_key(monkeypatch):
    def build(options, window, seed):
        ds = WindowDataset(notebook_snapshots(20), T=window.T)  # 2 frames per run
        return DataSplits("fake", ds, ds, ds)

    _fake(monkeypatch, build)
    with pytest.raises(GraphdynError, match="needs 6 frames") as exc:
        build_dataset("fake", {}, Window(T=5), 0)
    assert exc.value.field == "data.T"


def test_too_long_windows_of_the_real_builders(tmp_path):
    with pytest.raises(GraphdynError, match="data.T") as exc:
        build_dataset("charged", {"n_train": 2, "n_val": 2, "n_test": 2, "frames": 20}, Window(T=10, delta=3), 0)
    assert exc.value.field == "data.options.frames"  # frames is what the user set; the message names both
    path = generate(SpringSystem.build(), n_runs=3, dt=0.01, seed=0).save(tmp_path / "two_frames.npz")
    with pytest.raises(GraphdynError) as exc:
        build_dataset("file", {"path": str(path)}, Window(T=4), 0)
    assert exc.value.field == "data.T" and "two_frames.npz" in str(exc.value)


def test_snapshot_springs_honour_any_window():
    """Snapshot samples are short simulations of T * delta steps: the window is honoured."""
    splits = build_dataset("springs", {"n_train": 4, "n_val": 2, "n_test": 2}, Window(T=5, delta=3), 0)
    assert (splits.train.T, splits.train.delta, splits.train.traj.n_frames) == (5, 3, 16)
    batch = splits.train.batch()
    assert batch.x.shape == (4, 5, 3, 1) and batch.dt == pytest.approx(0.03)
