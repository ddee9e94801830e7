"""What a trajectory's nodes are called and which pairs are bonded, per dataset kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphdyn import Trajectory
from graphdyn.data.md17 import read_md17
from graphdyn.data.registry import Window, build_dataset
from graphdyn.errors import GraphdynError
from graphdyn.viz.topology import parse_residue, topology_of

FILES = Path(__file__).resolve().parents[1] / "data" / "files"
ETHANOL = FILES / "ethanol_md17.npz"
ETHANOL_OPTIONS = {"path": str(ETHANOL), "skip": 50, "fractions": [0.5, 0.25, 0.25], "train_size": 4, "val_size": 2, "test_size": 2}


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDYN_DATA", str(tmp_path / "data"))


def test_molecule_elements_from_atomic_numbers_and_bonds_from_one_hop_edges():
    traj = build_dataset("md17", ETHANOL_OPTIONS, Window(T=10, delta=5), 0).test.traj
    top = topology_of(traj)
    z = read_md17(ETHANOL)["z"]
    assert top.kind == "molecule" and top.n_atoms == int((z > 1).sum()) == 3
    assert top.elements == ("C", "C", "O") and top.names == ("C1", "C2", "O1")
    # ethanol's heavy atoms: C-C-O, bonded in a chain; the 2-hop C...O pair is not a bond
    hop1 = traj.edge_attr[:, 2] == 1
    assert {tuple(sorted(p)) for p in traj.edge_index[:, hop1].T.tolist()} == {tuple(b) for b in top.bonds.tolist()}
    assert len(top.bonds) == 2 and top.channels is None and top.length_unit == "angstrom"


def _skeleton() -> Trajectory:
    # joints 0-1-2 in a chain (bones, attribute 1) plus the 2-hop pair 0..2 (attribute 2)
    ei = np.array([[0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 2, 0]])
    attr = np.array([1, 1, 1, 1, 2, 2], dtype=float)[:, None]
    return Trajectory(positions=np.zeros((1, 2, 3, 3)), edge_index=ei, edge_attr=attr, dt=1 / 120,
                      metadata={"dataset": "mocap", "joint_names": ["root", "lhipjoint", "lfemur"]})


def test_skeleton_joint_names_and_bones_only():
    top = topology_of(_skeleton())
    assert top.kind == "skeleton" and top.names == ("root", "lhipjoint", "lfemur")
    assert top.bonds.tolist() == [[0, 1], [1, 2]] and set(top.elements) == {"X"}


def test_springs_bond_the_springs_and_nbody_bonds_nothing():
    springs = build_dataset("springs", {"n_masses": 4, "dim": 2, "graph": "ring", "n_train": 2, "n_val": 2, "n_test": 2}, Window(), 0)
    top = topology_of(springs.test.traj)
    assert top.kind == "particles" and top.dim == 2 and top.padded
    assert top.bonds.tolist() == [[0, 1], [0, 3], [1, 2], [2, 3]]
    assert top.resids == (1, 2, 3, 4) and top.names == ("X",) * 4
    charged = build_dataset("charged", {"n_train": 1, "n_val": 1, "n_test": 1, "frames": 20}, Window(), 0)
    top = topology_of(charged.test.traj)
    assert top.kind == "particles" and len(top.bonds) == 0 and len(charged.test.traj.edge_index[0]) > 0


def test_atom_positions_pad_to_3d_and_flatten_channels_node_major():
    x = np.random.default_rng(0).normal(size=(5, 4, 2))
    traj = Trajectory(positions=x[None], edge_index=np.zeros((2, 0), np.int64), dt=0.1)
    top = topology_of(traj)
    atoms = top.atom_positions(x)
    assert atoms.shape == (5, 4, 3) and np.array_equal(atoms[..., :2], x) and not atoms[..., 2].any()
    multi = np.random.default_rng(1).normal(size=(2, 3, 4, 3))
    top = topology_of(Trajectory(positions=multi[None], edge_index=np.zeros((2, 0), np.int64), dt=0.1))
    assert top.names[:5] == ("X1", "X2", "X3", "X4", "X1") and top.atom_resindex.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert np.array_equal(top.atom_positions(multi)[:, 5], multi[:, 1, 1])  # node 1, channel 1
    with pytest.raises(GraphdynError, match="positions"):
        top.atom_positions(multi[:, :2])


def test_parse_residue_labels():
    assert parse_residue("GLY214") == ("GLY", 214)
    assert parse_residue("HSD-3") == ("HSD", -3)
    with pytest.raises(GraphdynError, match="residues"):
        parse_residue("GLY")


@pytest.mark.filterwarnings("ignore::UserWarning")  # MDAnalysis: a PSF alone has no coordinates
def test_protein_residues_atoms_and_backbone_bonds():
    mda = pytest.importorskip("MDAnalysis")
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    traj = build_dataset("adk", {}, Window(), 0).test.traj
    top = topology_of(traj)
    n = traj.n_nodes
    assert top.kind == "protein" and top.n_atoms == 4 * n and top.names[:8] == ("N", "CA", "C", "O") * 2
    assert top.elements[:4] == ("N", "C", "C", "O")
    u = mda.Universe(datafiles.PSF)
    residues = u.select_atoms("protein").residues[:n]  # the last residue (GLY214) lacks a full backbone
    assert list(top.resnames) == list(residues.resnames) and list(top.resids) == list(residues.resids)
    # N-CA, CA-C, C-O in every residue, C(i)-N(i+1) between consecutive residues
    assert len(top.bonds) == 3 * n + (n - 1)
    assert [2, 4] in top.bonds.tolist() and [3, 4] not in top.bonds.tolist()
