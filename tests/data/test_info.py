"""``describe_file`` / ``format_description``: every supported kind of file, and bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphdyn.data.info import describe_file, format_description
from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError

MOCAP = Path(__file__).parent / "files" / "mocap"


def ethanol_file(path: Path, frames: int) -> Path:
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    xyz = np.array([[0, 0, 0], [1.52, 0, 0], [2.0, 1.35, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89],
                    [-0.36, -0.51, -0.89], [1.88, -0.51, 0.89], [1.88, -0.51, -0.89], [2.97, 1.35, 0]])
    R = xyz[None] + 0.01 * np.random.default_rng(0).standard_normal((frames, 9, 3))
    np.savez(path, R=R, z=z)
    return path


def test_md17_file(tmp_path):
    d = describe_file(ethanol_file(tmp_path / "ethanol_dft.npz", 30_002))
    assert d["format"].startswith("MD17") and d["molecule"] == "ethanol"
    assert (d["frames"], d["atoms"], d["formula"]) == (30_002, 9, "C2 H6 O1")
    prep = d["prepared (paper)"]
    assert prep["nodes (heavy atoms)"] == 3 and prep["edges (directed)"] == 6 and prep["2-hop pairs"] == 1
    # 30 001 frames - 20 000 = 10 001 candidates -> 1000 / 500 / 500: too few for 2000 val.
    assert prep["split pools (train/val/test)"] == "1000/500/500"
    assert "too short" in prep["samples (train/val/test)"]
    text = format_description(d)
    assert "prepared (paper):\n  frames: 30001" in text


def test_graphdyn_trajectory_file(tmp_path):
    traj = Trajectory(positions=np.zeros((2, 5, 3, 2)), edge_index=np.array([[0, 1], [1, 0]]), dt=0.1,
                      metadata={"labels": list(range(20))})
    d = describe_file(traj.save(tmp_path / "t.npz"))
    assert d["format"] == "graphdyn trajectory" and (d["runs"], d["frames"], d["nodes"], d["edges"]) == (2, 5, 3, 2)
    text = format_description(d)
    assert "labels: 0, 1, 2, 3, 4, 5, 6, 7, ... (20 in all)" in text
    assert "dt: 0.1" in text


def test_revised_md17_is_explained(tmp_path):
    path = tmp_path / "rmd17_aspirin.npz"
    np.savez(path, coords=np.zeros((4, 21, 3)), nuclear_charges=np.ones(21))
    d = describe_file(path)
    assert d["format"].startswith("revised MD17") and "not a trajectory" in d["note"]


def test_shipped_adk_topology_and_trajectory():
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    top = describe_file(datafiles.PSF)
    assert top["atoms"] == 3341 and top["backbone nodes (residues with N, CA, C, O)"] == 213
    assert top["residues without a full backbone"] == ["GLY214"] and top["partial charges"] is True
    pdb = describe_file(datafiles.PDB_small)
    assert pdb["partial charges"] is False and pdb["frames"] == 1
    assert pdb["CA contacts < 6 A (directed edges, first frame)"] > 0
    trj = describe_file(datafiles.DCD)
    assert (trj["atoms"], trj["frames"]) == (3341, 98)


def test_motion_capture_files_go_to_the_mocap_reader():
    pytest.importorskip("graphdyn.data.asf_amc")
    d = describe_file(MOCAP / "01.asf")
    assert isinstance(d, dict) and d


@pytest.mark.parametrize("content,match", [
    (None, "file not found"),
    (b"PK\x03\x04 broken", "not a readable .npz"),
    ("unknown_keys", "unrecognised .npz"),
])
def test_bad_npz(tmp_path, content, match):
    path = tmp_path / "x.npz"
    if content == "unknown_keys":
        np.savez(path, a=np.zeros(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GraphdynError, match=match) as err:
        describe_file(path)
    assert str(path) in str(err.value)


def test_unknown_extension_and_folder(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(GraphdynError, match="unsupported file type '.txt'"):
        describe_file(path)
    with pytest.raises(GraphdynError, match="folder"):
        describe_file(tmp_path)


def test_format_description_nesting_and_values():
    text = format_description({"a": 1.23456789, "b": {"c": [1, 2], "d": {}}, "e": None, "f": []})
    assert text.splitlines() == ["a: 1.23457", "b:", "  c: 1, 2", "  d: (none)", "e: -", "f: (none)"]
