"""MD17: the paper's preparation on small generated sGDML-format files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphdyn.data.md17 import (
    FILE_NAMES,
    bond_graph,
    build_md17,
    paper_split,
    read_md17,
)
from graphdyn.data.registry import Window, build_dataset
from graphdyn.errors import GraphdynError

# Heavy atoms first (C, C, O), then six hydrogens, as in the sGDML ethanol file.
ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_XYZ = np.array([
    [0.00, 0.00, 0.00], [1.52, 0.00, 0.00], [2.00, 1.35, 0.00],
    [-0.36, 1.03, 0.00], [-0.36, -0.51, 0.89], [-0.36, -0.51, -0.89],
    [1.88, -0.51, 0.89], [1.88, -0.51, -0.89], [2.97, 1.35, 0.00],
])


def benzene_geometry() -> tuple[np.ndarray, np.ndarray]:
    ang = np.arange(6) * np.pi / 3
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], 1)
    return np.array([6] * 6 + [1] * 6), np.concatenate([1.39 * ring, 2.48 * ring])


def write_md17(path: Path, z: np.ndarray, xyz: np.ndarray, frames: int, *, seed: int = 0, drift: float = 0.0, **extra) -> np.ndarray:
    """An sGDML-like file: jittered geometry plus an optional uniform drift; returns R."""
    rng = np.random.default_rng(seed)
    R = xyz[None] + 0.01 * rng.standard_normal((frames, len(z), 3))
    R += drift * np.arange(frames)[:, None, None] * np.array([1.0, -0.5, 0.25])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, R=R, z=z.astype(np.uint8), **extra)
    return R


def small(path: Path, **kw) -> dict:
    """Options that fit a short file: skip = T*delta, small splits."""
    return {"path": str(path), "skip": 100, "train_size": 20, "val_size": 10, "test_size": 10, **kw}


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDYN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_ethanol_heavy_atoms_graph_and_windows(tmp_path):
    R = write_md17(tmp_path / "ethanol_dft.npz", ETHANOL_Z, ETHANOL_XYZ, 1000)
    splits = build_md17(small(tmp_path / "ethanol_dft.npz"), Window(), seed=0)
    traj = splits.train.traj
    # Last frame dropped, hydrogens removed, no recentring for ethanol.
    np.testing.assert_array_equal(traj.positions[0], R[:-1, :3])
    np.testing.assert_array_equal(traj.node_attr[:, 0], [6, 6, 8])
    # Bonds C0-C1 (1.52) and C1-O2 (1.43); C0...O2 (2.41) is the 2-hop pair.
    pairs = {(int(i), int(j)): tuple(a) for i, j, a in zip(*traj.edge_index, traj.edge_attr)}
    assert pairs == {
        (0, 1): (6, 6, 1), (1, 0): (6, 6, 1), (1, 2): (6, 8, 1), (2, 1): (8, 6, 1),
        (0, 2): (6, 8, 2), (2, 0): (8, 6, 2),
    }
    # Window layout: inputs s, s+10, ..., s+90, target s+100.
    batch = splits.train.batch(np.arange(3))
    for b, s in enumerate(splits.train.starts[:3, 1]):
        np.testing.assert_allclose(batch.x[b].numpy(), R[s : s + 100 : 10, :3], rtol=1e-6)
        np.testing.assert_allclose(batch.target_x[b].numpy(), R[s + 100, :3], rtol=1e-6)
    assert (splits.train.T, splits.train.delta) == (10, 10)
    assert splits.description["samples"] == {"train": 20, "val": 10, "test": 10}
    assert traj.metadata["source_name"] == "ethanol_dft.npz"
    assert traj.units == {"length": "angstrom", "time": "fs"}
    assert traj.dt == 0.5 and "unverified" in traj.metadata["dt_source"]


def test_benzene_recentred_before_hydrogens_removed(data_home):
    z, xyz = benzene_geometry()
    # Published sGDML name, found by molecule under <data>/md17.
    R = write_md17(data_home / "md17" / "benzene2017_dft.npz", z, xyz, 600, drift=0.01)
    splits = build_md17({"molecule": "benzene", "skip": 100, "train_size": 5, "val_size": 5, "test_size": 5}, Window(), 0)
    traj = splits.train.traj
    expected = (R - R.mean(axis=1, keepdims=True))[:-1, :6]
    np.testing.assert_allclose(traj.positions[0], expected, atol=1e-12)
    assert traj.metadata["source_name"] == "benzene2017_dft.npz"
    assert traj.metadata["molecule"] == "benzene"
    # Ring bonds (6) and meta pairs (6), both directions; para pairs are 3 hops away.
    assert traj.n_edges == 24
    assert sorted(np.unique(traj.edge_attr[:, 2], return_counts=True)[1]) == [12, 12]
    raw = build_md17({"molecule": "benzene", "recentre": False, "skip": 100, "train_size": 5, "val_size": 5, "test_size": 5}, Window(), 0)
    np.testing.assert_allclose(raw.train.traj.positions[0], R[:-1, :6])


@pytest.mark.parametrize("molecule", sorted(FILE_NAMES))
def test_every_published_name_is_found(data_home, molecule):
    for name in FILE_NAMES[molecule]:
        folder = data_home / ("md17" if name.startswith("md17") else "")
        path = folder / name
        write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 400)
        splits = build_md17({"molecule": molecule, "skip": 100, "train_size": 2, "val_size": 1, "test_size": 1, "cache": False}, Window(), 0)
        assert splits.train.traj.metadata["source_file"] == str(path.resolve())
        path.unlink()


def test_missing_molecule_file_names_what_was_looked_for(data_home):
    with pytest.raises(GraphdynError) as err:
        build_md17({"molecule": "uracil"}, Window(), 0)
    msg = str(err.value)
    assert "uracil_dft.npz" in msg and "md17_uracil.npz" in msg and str(data_home) in msg and "download" in msg


def independent_split(n_frames: int) -> tuple[list, list, list]:
    """The authors' procedure written out with the global numpy generator and Python lists."""
    np.random.seed(100)
    cand = n_frames - 20000
    train = np.random.choice(np.arange(cand), size=int(0.1 * cand), replace=False)
    used = set(train.tolist())
    rest = [i for i in range(cand) if i not in used]
    val = np.random.choice(rest, size=int(0.05 * cand), replace=False)
    used |= set(val.tolist())
    rest = [i for i in range(cand) if i not in used]
    test = np.random.choice(rest, size=int(0.05 * cand), replace=False)
    return [list(a + 10000) for a in (train, val, test)]


def test_paper_split_matches_the_authors_numpy_procedure(tmp_path):
    # 60 002 frames -> 60 001 after dropping the last -> 40 001 candidates: pools 4000/2000/2000.
    path = tmp_path / "ethanol_dft.npz"
    write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 60_002)
    splits = build_dataset("md17", {"path": str(path)}, Window(), seed=123)
    ref = independent_split(60_001)
    assert [len(p) for p in ref] == [4000, 2000, 2000]
    for ds, pool, size in zip((splits.train, splits.val, splits.test), ref, (500, 2000, 2000)):
        assert len(ds) == size
        assert ds.starts[:, 1].tolist() == pool[:size]
        assert (ds.starts[:, 0] == 0).all()
    all_starts = np.concatenate([splits.train.starts[:, 1], splits.val.starts[:, 1], splits.test.starts[:, 1]])
    assert len(np.unique(all_starts)) == len(all_starts)
    assert all_starts.min() >= 10000 and all_starts.max() < 60_001 - 10000


def test_paper_split_pool_sizes_for_aspirin():
    # Spec 3.1: 211 762 frames -> 191 761 candidates -> pools 19 176 / 9 588 / 9 588.
    pools = paper_split(211_761)
    assert [len(p) for p in pools] == [19176, 9588, 9588]
    # Legacy semantics pinned: the first draw is RandomState(100).permutation(n)[:k].
    np.testing.assert_array_equal(pools[0], np.random.RandomState(100).permutation(191_761)[:19176] + 10000)


def test_split_larger_than_data_names_the_file(tmp_path):
    path = tmp_path / "toluene_dft.npz"
    write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 500)
    with pytest.raises(GraphdynError) as err:
        build_md17(small(path, val_size=1000), Window(), 0)
    assert str(path) in str(err.value) and "val" in str(err.value)
    with pytest.raises(GraphdynError, match="10000"):  # the paper's skip on a 500-frame file
        build_md17({"path": str(path)}, Window(), 0)
    with pytest.raises(GraphdynError, match="skip"):
        build_md17(small(path, skip=50), Window(), 0)


def test_options_are_validated(tmp_path):
    with pytest.raises(GraphdynError, match="unknown key 'data.options.frames'"):
        build_md17({"molecule": "ethanol", "frames": 3}, Window(), 0)
    with pytest.raises(GraphdynError, match="path"):
        build_md17({}, Window(), 0)
    with pytest.raises(GraphdynError, match="molecule"):
        build_md17({"molecule": "caffeine"}, Window(), 0)


def test_dt_from_option_and_from_the_file(tmp_path):
    path = tmp_path / "mol.npz"
    write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 600, dt=np.array(2.0), t_unit=np.array("fs"))
    assert build_md17(small(path), Window(), 0).train.traj.dt == 2.0
    traj = build_md17(small(path, dt=0.25), Window(), 0).train.traj
    assert traj.dt == 0.25 and traj.metadata["dt_source"] == "option"


def test_energy_and_forces_carried_for_heavy_atoms(tmp_path):
    path = tmp_path / "ethanol_dft.npz"
    rng = np.random.default_rng(1)
    F = rng.standard_normal((300, 9, 3))
    E = rng.standard_normal((300, 1))
    write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 300, E=E, F=F)
    traj = build_md17(small(path, with_energy_forces=True, train_size=5, val_size=2, test_size=2), Window(), 0).train.traj
    np.testing.assert_array_equal(traj.forces[0], F[:-1, :3])
    np.testing.assert_array_equal(traj.energy[0], E[:-1, 0])
    assert traj.units["energy"] == "kcal/mol"


def test_three_ring_pair_stays_a_bond():
    x = np.array([[0.0, 0, 0], [1.5, 0, 0], [0.75, 1.2, 0]])
    edge_index, attr, counts = bond_graph(x, np.array([6, 6, 6]))
    assert counts == {"bonds": 3, "two_hop": 0, "three_ring_pairs": 3}
    assert edge_index.shape == (2, 6) and (attr[:, 2] == 1).all()


# ---------------------------------------------------------------------------- bad files
def _assert_no_cache(data_home: Path) -> None:
    cache = data_home / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_truncated_and_garbage_files(tmp_path, data_home):
    path = tmp_path / "aspirin_dft.npz"
    write_md17(path, ETHANOL_Z, ETHANOL_XYZ, 400)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(GraphdynError, match="not a readable .npz|corrupt") as err:
        build_md17(small(path), Window(), 0)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_text("hello")
    with pytest.raises(GraphdynError, match="not a readable .npz"):
        build_md17(small(path), Window(), 0)
    _assert_no_cache(data_home)


def test_missing_keys_and_bad_values(tmp_path, data_home):
    path = tmp_path / "x.npz"
    np.savez(path, R=np.zeros((5, 9, 3)))
    with pytest.raises(GraphdynError, match="field 'z': missing key"):
        read_md17(path)
    np.savez(path, coords=np.zeros((5, 9, 3)), nuclear_charges=ETHANOL_Z)
    with pytest.raises(GraphdynError, match="revised MD17"):
        read_md17(path)
    R = np.repeat(ETHANOL_XYZ[None], 400, 0)
    R[123, 4, 1] = np.nan
    np.savez(path, R=R, z=ETHANOL_Z)
    with pytest.raises(GraphdynError, match=r"field 'R': contains NaN or infinite values \(first at index \(123, 4, 1\)\)"):
        build_md17(small(path), Window(), 0)
    R[123, 4, 1] = np.inf
    np.savez(path, R=R, z=ETHANOL_Z)
    with pytest.raises(GraphdynError, match="infinite"):
        read_md17(path)
    np.savez(path, R=np.zeros((5, 9, 3)), z=ETHANOL_Z[:5])
    with pytest.raises(GraphdynError, match="field 'z'"):
        read_md17(path)
    np.savez(path, R=np.zeros((5, 9, 3)), z=ETHANOL_Z, r_unit=np.array("bohr"))
    with pytest.raises(GraphdynError, match="angstrom"):
        read_md17(path)
    with pytest.raises(GraphdynError, match="file not found"):
        read_md17(tmp_path / "absent.npz")
    _assert_no_cache(data_home)


def test_md17_file_from_the_molecule_simulator_reads_unchanged(tmp_path):
    # The keys graphdyn.physics.molecule writes (sGDML layout plus metadata strings, eV units).
    path = tmp_path / "sim.npz"
    R = write_md17(
        path, ETHANOL_Z, ETHANOL_XYZ, 300,
        E=np.zeros(300), F=np.zeros((300, 9, 3)), smiles=np.array("CCO"), name=np.array("CCO"),
        dt=np.array(1.0), r_unit=np.array("Ang"), e_unit=np.array("eV"), t_unit=np.array("fs"),
    )
    traj = build_md17(small(path, with_energy_forces=True, train_size=5, val_size=2, test_size=2), Window(), 0).train.traj
    np.testing.assert_array_equal(traj.positions[0], R[:-1, :3])
    assert traj.dt == 1.0 and traj.units["energy"] == "eV"


def test_renamed_benzene_is_recognised_by_its_name_key(tmp_path):
    z, xyz = benzene_geometry()
    path = tmp_path / "my_copy.npz"
    R = write_md17(path, z, xyz, 400, drift=0.02, name=np.array("benzene2017"))
    traj = build_md17(small(path, train_size=5, val_size=2, test_size=2), Window(), 0).train.traj
    assert traj.metadata["molecule"] == "benzene"
    np.testing.assert_allclose(traj.positions[0], (R - R.mean(1, keepdims=True))[:-1, :6], atol=1e-12)
