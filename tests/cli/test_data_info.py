"""``graphdyn data info PATH``: a readable summary, or one error line with exit code 2."""

from __future__ import annotations


import numpy as np
import pytest





def test_md17_file_summary(run_cli, tmp_path):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    xyz = np.array([[0, 0, 0], [1.52, 0, 0], [2.0, 1.35, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89],
                    [-0.36, -0.51, -0.89], [1.88, -0.51, 0.89], [1.88, -0.51, -0.89], [2.97, 1.35, 0]])
    path = tmp_path / "md17_ethanol.npz"
    np.savez(path, R=np.repeat(xyz[None], 50, 0), z=z)
    code, out, err = run_cli("data", "info", str(path))
    assert code == 0, err
    assert "molecule: ethanol" in out and "nodes (heavy atoms): 3" in out and "edges (directed): 6" in out


def test_shipped_adk_trajectory(run_cli):
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    code, out, _ = run_cli("data", "info", datafiles.DCD2)
    assert code == 0 and "frames: 102" in out and "atoms: 3341" in out


def test_bad_file_is_one_line_exit_2(run_cli, tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"definitely not a zip archive")
    code, out, err = run_cli("data", "info", str(path))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and lines[0].startswith("graphdyn: error:")
