"""Written trajectories read back with MDAnalysis: atoms, names, frames and coordinates to
the format's precision (PDB 1e-3, DCD float32, XYZ 1e-5); errors leave no partial file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphdyn import Trajectory
from graphdyn.data.md17 import read_md17
from graphdyn.data.registry import Window, build_dataset
from graphdyn.errors import GraphdynError
from graphdyn.viz.topology import topology_of
from graphdyn.viz.trajectory_files import trajectory_format, write_rollout_files, write_trajectory

mda = pytest.importorskip("MDAnalysis")
# reading files back: MDAnalysis warns about what these files never have (unit cells, element X)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PendingDeprecationWarning")

FILES = Path(__file__).resolve().parents[1] / "data" / "files"
ETHANOL = FILES / "ethanol_md17.npz"
#: the largest error of each format on coordinates of a few angstrom: its rounding, plus float32
TOLERANCE = {"pdb": 5e-4 + 1e-5, "dcd": 1e-5, "xyz": 5e-6 + 1e-5}


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDYN_DATA", str(tmp_path / "data"))


@pytest.fixture
def ethanol():
    opts = {"path": str(ETHANOL), "skip": 50, "fractions": [0.5, 0.25, 0.25], "train_size": 4, "val_size": 2, "test_size": 2}
    return build_dataset("md17", opts, Window(T=10, delta=5), 0).test


def universe(*files):
    return mda.Universe(*[str(f) for f in files])


def frames_of(u) -> np.ndarray:
    return np.stack([ts.positions.copy() for ts in u.trajectory])


@pytest.mark.parametrize("fmt", ["pdb", "dcd", "xyz"])
def test_molecule_round_trip(fmt, ethanol, tmp_path):
    traj = ethanol.traj
    top = topology_of(traj)
    x = traj.positions[0, 100:107]
    written = write_rollout_files([tmp_path / f"m.{fmt}"], x, top, frame_dt=traj.dt * ethanol.delta, time_unit=traj.units["time"])
    files = [w.path for w in written]
    assert files == ([tmp_path / "m.dcd", tmp_path / "m.pdb"] if fmt == "dcd" else [tmp_path / f"m.{fmt}"])
    u = universe(tmp_path / "m.pdb", tmp_path / "m.dcd") if fmt == "dcd" else universe(tmp_path / f"m.{fmt}")
    got = frames_of(u)
    assert got.shape == (7, 3, 3)
    assert np.abs(got - x).max() <= TOLERANCE[fmt]
    z = read_md17(ETHANOL)["z"]
    assert list(u.atoms.elements if fmt != "xyz" else u.atoms.names) == [{6: "C", 8: "O"}[int(v)] for v in z[z > 1]]
    if fmt == "pdb":
        assert list(u.atoms.names) == ["C1", "C2", "O1"] and len(u.bonds) == 2
    if fmt == "dcd":  # frames are dt * delta = 0.5 fs * 5 apart; MDAnalysis reads ps
        assert u.trajectory.dt == pytest.approx(traj.dt * 5 * 1e-3, rel=1e-5)
        assert universe(tmp_path / "m.pdb").trajectory.n_frames == 1  # the one-frame topology


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_adk_backbone_residues_and_atom_names(tmp_path):
    pytest.importorskip("MDAnalysisTests")
    from MDAnalysisTests.datafiles import PSF

    test = build_dataset("adk", {}, Window(), 0).test
    x = test.traj.positions[1, :3]  # [3, 213, 4, 3]
    write_rollout_files([tmp_path / "adk.pdb", tmp_path / "adk.dcd"], x, topology_of(test.traj), frame_dt=test.traj.dt * test.delta,
                        time_unit=test.traj.units["time"])
    assert not (tmp_path / "adk_true.pdb").exists()  # no truth asked for
    u = universe(tmp_path / "adk.pdb", tmp_path / "adk.dcd")
    n = x.shape[1]
    backbone = u.select_atoms("backbone")  # MDAnalysis' own N, CA, C, O selection of protein residues
    assert len(u.atoms) == len(backbone) == 4 * n and u.trajectory.n_frames == 3
    ref = universe(PSF).select_atoms("protein").residues[:n]
    assert list(u.residues.resnames) == list(ref.resnames) and list(u.residues.resids) == list(ref.resids)
    assert list(u.atoms.names[:8]) == ["N", "CA", "C", "O"] * 2
    assert np.abs(frames_of(u) - x.reshape(3, 4 * n, 3)).max() <= TOLERANCE["dcd"] * 10  # coordinates up to ~50 A
    pdb = frames_of(universe(tmp_path / "adk.pdb"))
    assert np.abs(pdb - x.reshape(3, 4 * n, 3)).max() <= TOLERANCE["pdb"]


def test_truth_beside_each_file_and_frame_stride(tmp_path):
    x = np.random.default_rng(0).normal(size=(9, 4, 2))
    traj = Trajectory(positions=x[None], edge_index=np.zeros((2, 0), np.int64), dt=0.1)
    top = topology_of(traj)
    written = write_rollout_files([tmp_path / "p.xyz"], x, top, true=x + 1.0, stride=3)
    assert [(w.path.name, w.role, w.frames) for w in written] == [("p.xyz", "prediction", 3), ("p_true.xyz", "truth", 3)]
    got = frames_of(universe(tmp_path / "p_true.xyz"))
    assert np.abs(got[..., :2] - (x[::3] + 1.0)).max() <= TOLERANCE["xyz"] and not got[..., 2].any()  # 2-D padded with zeros
    assert set(universe(tmp_path / "p.xyz").atoms.names) == {"X"}


def test_skeleton_pdb_keeps_full_joint_names_in_remarks(tmp_path):
    ei = np.array([[0, 1], [1, 0]])
    traj = Trajectory(positions=np.zeros((1, 2, 2, 3)), edge_index=ei, edge_attr=np.ones((2, 1)), dt=1 / 120,
                      metadata={"dataset": "mocap", "joint_names": ["root", "lowerback"]})
    write_trajectory(tmp_path / "s.pdb", traj.positions[0], topology_of(traj))
    text = (tmp_path / "s.pdb").read_text()
    assert "1 root, 2 lowerback" in text
    assert list(universe(tmp_path / "s.pdb").atoms.names) == ["root", "lowe"]  # PDB atom names hold 4 characters


def test_diverged_prediction_is_cut_before_the_first_bad_stride(tmp_path):
    x = np.random.default_rng(1).normal(size=(8, 3, 3))
    x[5, 1, 0] = np.nan
    x[3, 0, 2] = 2e4  # fits a DCD or XYZ, not PDB's %8.3f columns
    top = topology_of(Trajectory(positions=np.zeros((1, 2, 3, 3)), edge_index=np.zeros((2, 0), np.int64), dt=1.0))
    pdb, dcd, _ = write_rollout_files([tmp_path / "d.pdb", tmp_path / "d.dcd", tmp_path / "d.xyz"], x, top, stride=2)
    assert pdb.frames == 2 and "outside PDB's range" in pdb.note and "stride 3" in pdb.note  # strides 0, 2
    assert dcd.frames == 3 and "non-finite" in dcd.note and "stride 5" in dcd.note  # strides 0, 2, 4
    assert universe(tmp_path / "d.pdb").trajectory.n_frames == 2
    assert universe(tmp_path / "d.pdb", tmp_path / "d.dcd").trajectory.n_frames == 3
    with pytest.raises(GraphdynError, match="frame 5 has non-finite"):
        write_trajectory(tmp_path / "e.xyz", x, top)
    assert not (tmp_path / "e.xyz").exists()


def test_unknown_suffix_names_the_option_and_the_formats(tmp_path):
    with pytest.raises(GraphdynError) as err:
        trajectory_format(tmp_path / "t.gro")
    assert "--trajectory" in str(err.value) and all(s in str(err.value) for s in (".pdb", ".dcd", ".xyz", ".gro"))
    assert trajectory_format("T.PDB") == "pdb"


def test_error_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    from MDAnalysis.coordinates.PDB import PDBWriter

    original = PDBWriter.write
    calls = []

    def fail_on_third_frame(self, obj):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, obj)

    monkeypatch.setattr(PDBWriter, "write", fail_on_third_frame)
    target = tmp_path / "t.pdb"
    target.write_text("an older file\n")
    x = np.random.default_rng(2).normal(size=(5, 3, 3))
    top = topology_of(Trajectory(positions=x[None], edge_index=np.zeros((2, 0), np.int64), dt=1.0))
    with pytest.raises(OSError, match="disk full"):
        write_trajectory(target, x, top)
    assert len(calls) == 3
    assert target.read_text() == "an older file\n" and [p.name for p in tmp_path.iterdir()] == ["t.pdb"]
