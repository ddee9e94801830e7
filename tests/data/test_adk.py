"""AdK backbone dataset on the real AdK files shipped with MDAnalysisTests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

mda = pytest.importorskip("MDAnalysis")
datafiles = pytest.importorskip("MDAnalysisTests.datafiles")

from graphdyn.data.adk import AdkOptions, build_adk, chronological_starts, load_prepared  # noqa: E402
from graphdyn.data.registry import Window, build_dataset  # noqa: E402
from graphdyn.errors import GraphdynError  # noqa: E402

PSF, DCD, DCD2 = datafiles.PSF, datafiles.DCD, datafiles.DCD2


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDYN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(scope="module")
def default_splits(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAPHDYN_DATA", str(tmp_path_factory.mktemp("adk_data")))
    try:
        yield build_dataset("adk", {}, Window(), seed=0)
    finally:
        mp.undo()


def universe(*files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*files)


def test_shipped_default_shapes_split_and_note(default_splits):
    d = default_splits.description
    assert d["shipped_test_files"] and "not the paper's" in d["note"]
    assert (d["runs"], d["frames"], d["nodes"], d["channels"]) == (2, 98, 213, 4)
    assert (d["T"], d["delta"]) == (10, 5)
    # 98 - 50 = 48 starts per run: int(28.8) / int(9.6) / int(9.6), in each of 2 runs.
    assert d["samples"] == {"train": 56, "val": 18, "test": 18}
    traj = default_splits.train.traj
    assert traj.metadata["frames_per_run"] == [98, 102]
    assert traj.metadata["skipped_residues"] == ["GLY214"]
    assert traj.units == {"length": "angstrom", "time": "ps"}
    assert traj.dt == pytest.approx(1.0, rel=1e-6)


def test_backbone_positions_charges_and_contacts_match_mdanalysis(default_splits):
    traj = default_splits.train.traj
    u = universe(PSF, DCD2)
    u.trajectory[7]
    for resid in (1, 100, 213):
        for c, name in enumerate(("N", "CA", "C", "O")):
            atom = u.select_atoms(f"resid {resid} and name {name}")
            np.testing.assert_allclose(traj.positions[1, 7, resid - 1, c], atom.positions[0], atol=1e-5)
            assert traj.node_attr[resid - 1, c] == pytest.approx(atom.charges[0])
    # Contacts: CA pairs under 6 A at frame 0 of the first run, both directions.
    u0 = universe(PSF, DCD)
    ca = u0.select_atoms("name CA and not resid 214").positions
    dist = mda.lib.distances.distance_array(ca, ca)
    expected = {(int(i), int(j)) for i, j in zip(*np.nonzero((dist < 6.0) & ~np.eye(len(ca), dtype=bool)))}
    got = set(map(tuple, traj.edge_index.T.tolist()))
    assert got == expected and len(got) == traj.n_edges
    i, j = traj.edge_index
    np.testing.assert_allclose(traj.edge_attr[:, 0], dist[i, j], rtol=1e-5)


def test_chronological_split_and_windows(default_splits):
    train, val, test = default_splits.train, default_splits.val, default_splits.test
    for run in (0, 1):
        assert train.starts[train.starts[:, 0] == run, 1].tolist() == list(range(0, 28))
        assert val.starts[val.starts[:, 0] == run, 1].tolist() == list(range(28, 37))
        assert test.starts[test.starts[:, 0] == run, 1].tolist() == list(range(37, 46))
    batch = test.batch(np.array([0]))
    run, s = test.starts[0]
    pos = test.traj.positions
    np.testing.assert_allclose(batch.x[0].numpy(), pos[run, s : s + 50 : 5])
    np.testing.assert_allclose(batch.target_x[0].numpy(), pos[run, s + 50])
    assert batch.x.shape == (1, 10, 213, 4, 3) and batch.node_attr.shape == (1, 213, 4)


def test_paper_split_sizes():
    starts = chronological_starts(4187, 1, 50, (0.6, 0.2, 0.2))
    assert [len(starts[k]) for k in ("train", "val", "test")] == [2482, 827, 827]
    assert starts["val"][0, 1] == 2482 and starts["test"][-1, 1] == 4135


def test_join_time_window_override_and_cache(data_home):
    opts = {"topology": PSF, "trajectory": [DCD, DCD2], "join": "time"}
    splits = build_adk(opts, Window(T=4, delta=2), 0)
    assert splits.description["runs"] == 1 and splits.description["frames"] == 200
    assert splits.description["samples"] == {"train": 115, "val": 38, "test": 38}  # 192 starts
    assert splits.description["cache"] == "built"
    assert build_adk(opts, Window(T=4, delta=2), 0).description["cache"] == "hit"
    assert len(list((data_home / "cache").glob("adk-*.npz"))) == 1


def test_runs_with_different_time_steps_are_refused():
    with pytest.raises(GraphdynError, match="different time steps"):
        build_adk({"topology": PSF, "trajectory": [DCD, datafiles.DCD_NAMD_GBIS], "cache": False}, Window(), 0)


def test_topology_without_charges_gets_ones():
    traj, _ = load_prepared(AdkOptions(topology=datafiles.PDB_small, cache=False))
    assert traj.node_attr.shape == (213, 4) and (traj.node_attr == 1).all()
    assert "no partial charges" in traj.metadata["node_attr_source"]


# ---------------------------------------------------------------------------- bad input
def _assert_no_cache(data_home: Path) -> None:
    cache = data_home / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def _write_dcd(path: Path, u, frames: int, nan_frame: int | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), len(u.atoms)) as w:
            for f in range(frames):
                u.trajectory[f]
                if f == nan_frame:
                    u.atoms.positions = np.full((len(u.atoms), 3), np.nan)
                w.write(u.atoms)


def test_atom_count_mismatch(tmp_path, data_home):
    small = tmp_path / "small.dcd"
    _write_dcd(small, universe(datafiles.PDB_xsmall), 1)
    with pytest.raises(GraphdynError, match="atom count does not match") as err:
        build_adk({"topology": PSF, "trajectory": str(small)}, Window(), 0)
    assert str(small) in str(err.value) and "\n" not in str(err.value)
    _assert_no_cache(data_home)


def test_nan_coordinates(tmp_path, data_home):
    bad = tmp_path / "nan.dcd"
    _write_dcd(bad, universe(PSF, DCD), 4, nan_frame=2)
    with pytest.raises(GraphdynError, match="NaN or infinite coordinates \\(first at frame 2") as err:
        build_adk({"topology": PSF, "trajectory": str(bad)}, Window(), 0)
    assert str(bad) in str(err.value)
    _assert_no_cache(data_home)


def test_truncated_and_missing_trajectory(tmp_path, data_home):
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(Path(DCD).read_bytes()[:1_000_000])
    with pytest.raises(GraphdynError, match="truncated DCD") as err:
        build_adk({"topology": PSF, "trajectory": str(cut)}, Window(), 0)
    assert str(cut) in str(err.value)
    cut.write_bytes(Path(DCD).read_bytes()[:100])
    with pytest.raises(GraphdynError, match=str(cut)):
        build_adk({"topology": PSF, "trajectory": str(cut)}, Window(), 0)
    with pytest.raises(GraphdynError, match="file not found"):
        build_adk({"topology": PSF, "trajectory": str(tmp_path / "absent.dcd")}, Window(), 0)
    _assert_no_cache(data_home)


def test_split_larger_than_data_and_bad_options():
    with pytest.raises(GraphdynError, match="empty") as err:
        build_adk({"cache": False}, Window(T=10, delta=10), 0)  # 98 frames < 101 needed
    assert "adk_dims.dcd" in str(err.value)
    with pytest.raises(GraphdynError, match="unknown key 'data.options.stride'"):
        build_adk({"stride": 5}, Window(), 0)
    with pytest.raises(GraphdynError, match="topology"):
        build_adk({"trajectory": DCD}, Window(), 0)
