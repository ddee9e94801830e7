"""``graphdyn rollout --trajectory / --with-truth / --animate`` on tiny trained checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from graphdyn.training.config import load_config
from graphdyn.training.run import train

mda = pytest.importorskip("MDAnalysis")
iio = pytest.importorskip("imageio.v3")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PendingDeprecationWarning")

FILES = Path(__file__).resolve().parents[1] / "data" / "files"
ETHANOL = {"source": "md17", "T": 10, "delta": 5, "options": {"path": str(FILES / "ethanol_md17.npz"), "skip": 50,
           "fractions": [0.5, 0.25, 0.25], "train_size": 8, "val_size": 4, "test_size": 4}}


def _train(folder: Path, overrides: list[str]) -> Path:
    cfg = load_config(None, [*overrides, "model.name=copy_last", "training.epochs=1", "training.batch_size=8", "training.progress=false",
                             "eval.rollout_steps=2", "eval.rollout_starts=1", f"output_dir={folder}"])
    return train(cfg, quiet=True, run_dir=folder / "run").run_dir / "model.pt"


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAPHDYN_DATA", str(tmp_path_factory.mktemp("data")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def springs_ckpt(tmp_path_factory, data_home) -> Path:
    return _train(tmp_path_factory.mktemp("springs"), ["data.source=springs", "data.options.n_train=16", "data.options.n_val=8",
                                                      "data.options.n_test=8"])


@pytest.fixture(scope="module")
def ethanol_ckpt(tmp_path_factory, data_home) -> Path:
    return _train(tmp_path_factory.mktemp("ethanol"), [f"data={json.dumps(ETHANOL)}"])


def test_files_truth_and_animation_for_a_1d_spring_chain(springs_ckpt, tmp_path, run_cli):
    out = tmp_path / "out"
    proc = run_cli("rollout", str(springs_ckpt), "--steps", "6", "--starts", "1", "--out", str(out / "r.npz"),
                   "-t", str(out / "p.xyz"), "-t", str(out / "p.dcd"), "--with-truth", "--animate", str(out / "a.gif"),
                   "--fps", "4", "--frame-stride", "2")
    assert proc.code == 0, proc.err
    assert sorted(p.name for p in out.iterdir()) == ["a.gif", "p.dcd", "p.pdb", "p.xyz", "p_true.dcd", "p_true.xyz", "r.npz"]
    assert "wrote" in proc.out and "padded with zeros" in proc.out and "a.gif: 4 frames" in proc.out
    with np.load(out / "r.npz") as z:
        start = z["start"][0]
        pred = np.concatenate([start[None], z["pred"][0]])[::2]  # rollout strides 0, 2, 4, 6
        true = np.concatenate([start[None], z["true"][0]])[::2]
    for name, expected in (("p", pred), ("p_true", true)):
        u = mda.Universe(str(out / f"{name}.xyz"))
        got = np.stack([ts.positions.copy() for ts in u.trajectory])
        assert got.shape == (4, 3, 3) and not got[..., 1:].any()
        assert np.abs(got[..., :1] - expected).max() <= 1e-5
        dcd = mda.Universe(str(out / "p.pdb"), str(out / f"{name}.dcd"))
        assert dcd.trajectory.n_frames == 4
    assert iio.imread(out / "a.gif", index=None).shape[0] == 4


def test_molecule_pdb_has_element_names(ethanol_ckpt, tmp_path, run_cli):
    proc = run_cli("rollout", str(ethanol_ckpt), "--steps", "3", "--starts", "1", "--out", str(tmp_path / "r.npz"),
                   "--trajectory", str(tmp_path / "ethanol.pdb"))
    assert proc.code == 0, proc.err
    u = mda.Universe(str(tmp_path / "ethanol.pdb"))
    assert list(u.atoms.elements) == ["C", "C", "O"] and u.trajectory.n_frames == 4 and len(u.bonds) == 2


def test_unknown_suffix_is_one_line_error_before_any_work(springs_ckpt, tmp_path, run_cli):
    proc = run_cli("rollout", str(springs_ckpt), "--out", str(tmp_path / "r.npz"), "--trajectory", str(tmp_path / "t.gro"))
    lines = [ln for ln in proc.err.splitlines() if ln.strip()]
    assert proc.code == 2 and len(lines) == 1 and "--trajectory" in lines[0] and ".pdb" in lines[0] and ".gro" in lines[0]
    proc = run_cli("rollout", str(springs_ckpt), "--out", str(tmp_path / "r.npz"), "--animate", str(tmp_path / "a.avi"))
    assert proc.code == 2 and "--animate" in proc.err and ".gif" in proc.err
    proc = run_cli("rollout", str(springs_ckpt), "--out", str(tmp_path / "r.npz"), "--with-truth")
    assert proc.code == 2 and "--with-truth" in proc.err
    assert list(tmp_path.iterdir()) == []


def test_mp4_without_ffmpeg_warns_once_and_writes_gif(springs_ckpt, tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    proc = run_cli("rollout", str(springs_ckpt), "--steps", "2", "--starts", "1", "--out", str(tmp_path / "r.npz"),
                   "--animate", str(tmp_path / "a.mp4"))
    assert proc.code == 0, proc.err
    warnings = [ln for ln in proc.err.splitlines() if ln.strip()]
    assert len(warnings) == 1 and "pip install graphdyn[video]" in warnings[0]
    assert (tmp_path / "a.gif").exists() and not (tmp_path / "a.mp4").exists()
