"""``graphdyn simulate molecule``."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from graphdyn.cli.simulate_molecule import register
from graphdyn.errors import GraphdynError

pytest.importorskip("tblite")


@pytest.fixture(scope="module")
def app():
    """A root app with a ``simulate`` group holding only this command."""
    root = typer.Typer()
    simulate = typer.Typer()
    register(simulate)
    root.add_typer(simulate, name="simulate")
    return root


def _invoke(app, *args):
    return CliRunner().invoke(app, ["simulate", "molecule", *args])


def test_writes_an_md17_file(app, tmp_path):
    out = tmp_path / "ethanol.npz"
    result = _invoke(app, "--smiles", "CCO", "--steps", "6", "--record-every", "2", "--temperature", "400",
                     "--dt", "0.25", "--friction", "0.02", "--seed", "5", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    with np.load(out, allow_pickle=False) as data:
        assert data["R"].shape == (4, 9, 3) and data["F"].shape == (4, 9, 3) and data["E"].shape == (4,)
        assert data["z"].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
        assert float(data["temperature"]) == 400 and float(data["dt"]) == 0.5 and float(data["friction"]) == 0.02
        assert int(data["seed"]) == 5 and str(data["method"]) == "GFN2-xTB"


def test_molecule_by_md17_name(app, tmp_path):
    out = tmp_path / "uracil.npz"
    result = _invoke(app, "--molecule", "uracil", "--steps", "1", "--quiet", "--out", str(out))
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert (data["z"] > 1).sum() == 8 and str(data["smiles"]) == "O=c1cc[nH]c(=O)[nH]1"


@pytest.mark.parametrize("args, match", [
    (["--smiles", "C1CC"], "invalid SMILES 'C1CC'"),
    (["--smiles", "CCO", "--smiles", "O"], "2 molecule"),
    (["--molecule", "caffeine"], "unknown MD17 molecule 'caffeine'"),
    (["--smiles", "CCO", "--dt", "0"], "'dt' must be positive"),
])
def test_user_errors_are_one_line_and_write_nothing(app, tmp_path, args, match):
    result = _invoke(app, *args, "--steps", "2", "--out", str(tmp_path / "x.npz"))
    assert isinstance(result.exception, GraphdynError)
    assert match in str(result.exception) and "\n" not in str(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_installed_cli_exits_2_on_a_bad_smiles(tmp_path, monkeypatch, capsys):
    from graphdyn.cli import app as cli_app

    names = {c.name for g in cli_app.app.registered_groups if g.name == "simulate"
             for c in g.typer_instance.registered_commands}
    if "molecule" not in names:
        pytest.skip("graphdyn.cli.simulate does not register the molecule command yet")
    monkeypatch.setattr(sys, "argv", ["graphdyn", "simulate", "molecule", "--smiles", "C1CC", "--steps", "1",
                                      "--out", str(tmp_path / "x.npz")])
    with pytest.raises(SystemExit) as info:
        cli_app.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid SMILES" in err
