"""`graphdyn check-reference`: report per array, exit 0 / 1 / 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from graphdyn.cli.app import app, main
from shared_fixtures import FIXTURES, needs_fixtures

runner = CliRunner()


@needs_fixtures
@pytest.mark.parametrize("name", ["estag_reference_single.npz", "estag_reference_multi.npz"])
def test_check_reference_passes_on_shipped_fixtures(name):
    result = runner.invoke(app, ["check-reference", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("layers.1.temporal.x") for line in lines)
    assert lines[-1].endswith("OK")


@needs_fixtures
def test_check_reference_exits_1_on_a_perturbed_parameter(tmp_path):
    with np.load(FIXTURES / "estag_reference_multi.npz") as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["param.layers.0.spatial.message.0.weight"][0, 0] += 1e-4
    np.savez(tmp_path / "bad.npz", **arrays)
    result = runner.invoke(app, ["check-reference", str(tmp_path / "bad.npz")])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "> tol" in result.output
    loose = runner.invoke(app, ["check-reference", str(tmp_path / "bad.npz"), "--tol", "1.0"])
    assert loose.exit_code == 0


def test_check_reference_exits_2_on_a_bad_file(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"\x00not an archive")
    monkeypatch.setattr(sys, "argv", ["graphdyn", "check-reference", str(bad)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "garbage.npz" in err and len(err.strip().splitlines()) == 1


@needs_fixtures
@pytest.mark.parametrize("name,last", [("st_egnn_reference.npz", "layers.1.x"), ("st_gnn_reference.npz", "decoded")])
def test_check_reference_picks_the_baseline_by_config_kind(name, last):
    result = runner.invoke(app, ["check-reference", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith(last) for line in lines)
    assert not any(line.startswith("edft") for line in lines)
    assert lines[-1].endswith("OK")


def _baseline_fixture(tmp_path):
    from tests.evaluation.test_reference import own_baseline_fixture

    return own_baseline_fixture(tmp_path / "own.npz", "st_gmn", 3, 2, 5, 4, 6, 1, seed=7)


def test_check_reference_exits_1_on_a_perturbed_expected_array_of_a_baseline(tmp_path):
    path = _baseline_fixture(tmp_path)
    assert runner.invoke(app, ["check-reference", str(path)]).exit_code == 0
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["expect.pass.1.layers.0.h"][0, 1, 2, 3] += 1e-6
    np.savez(tmp_path / "bad.npz", **arrays)
    result = runner.invoke(app, ["check-reference", str(tmp_path / "bad.npz")])
    assert result.exit_code == 1
    assert any(line.startswith("pass.1.layers.0.h") and line.endswith("> tol") for line in result.output.splitlines())


def test_check_reference_exits_2_on_an_unknown_kind_naming_the_allowed_ones(tmp_path, monkeypatch, capsys):
    with np.load(_baseline_fixture(tmp_path)) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["config.kind"] = np.array("st_tfn")
    np.savez(tmp_path / "kind.npz", **arrays)
    monkeypatch.setattr(sys, "argv", ["graphdyn", "check-reference", str(tmp_path / "kind.npz")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.kind" in err and "'st_egnn', 'st_gnn', 'st_gmn'" in err
