"""Molecular MD (GFN2-xTB via tblite, Langevin via ASE, conformers via RDKit)."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from graphdyn.errors import GraphdynError

pytest.importorskip("rdkit")
pytest.importorskip("ase")
pytest.importorskip("tblite")

from graphdyn.physics import molecule as mol  # noqa: E402

FILES = Path(__file__).resolve().parents[1] / "data" / "files"


@pytest.fixture(scope="module")
def short_run():
    """12 Langevin steps of ethanol at 500 K, a frame every 3 steps."""
    config = mol.MDConfig(smiles="CCO", steps=12, temperature=500.0, dt=0.5, record_every=3, seed=3)
    return config, mol.simulate_molecule(config)


def test_short_run_has_md17_layout_and_finite_values(short_run):
    config, out = short_run
    assert config.n_frames == 5
    assert out["R"].shape == (5, 9, 3) and out["F"].shape == (5, 9, 3) and out["E"].shape == (5,)
    assert out["R"].dtype == np.float64 and out["z"].dtype.kind == "i"
    assert np.isfinite(out["R"]).all() and np.isfinite(out["E"]).all() and np.isfinite(out["F"]).all()
    # The atoms moved, and the energy is a GFN2-xTB total energy of ethanol (about -310 eV).
    assert np.abs(out["R"][-1] - out["R"][0]).max() > 1e-3
    assert -320 < out["E"].mean() < -300
    assert float(out["dt"]) == 1.5 and float(out["dt_step"]) == 0.5
    assert str(out["smiles"]) == "CCO" and str(out["method"]) == "GFN2-xTB" and str(out["e_unit"]) == "eV"


def test_atomic_numbers_are_the_smiles_heavy_atoms_then_hydrogens(short_run):
    _, out = short_run
    assert out["z"].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    z, _ = mol.embed(mol.MD17_SMILES["aspirin"])
    # C9H8O4: 13 heavy atoms first (spec 3.1), then 8 hydrogens.
    assert len(z) == 21 and (z[:13] > 1).all() and (z[13:] == 1).all()
    assert sorted(z[:13].tolist()) == [6] * 9 + [8] * 4


def test_recorded_forces_are_minus_the_energy_gradient(short_run):
    _, out = short_run
    z, R = out["z"], out["R"][-1]
    energy, forces = mol.energy_forces(z, R)
    assert abs(energy - out["E"][-1]) < 1e-4  # same geometry, fresh SCF
    np.testing.assert_allclose(forces, out["F"][-1], atol=1e-3)
    h = 1e-3
    for atom, axis in [(2, 1), (0, 0)]:  # the oxygen, a carbon
        plus, minus = R.copy(), R.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = -(mol.energy_forces(z, plus)[0] - mol.energy_forces(z, minus)[0]) / (2 * h)
        assert numeric == pytest.approx(forces[atom, axis], abs=2e-3, rel=1e-2)


def test_same_seed_same_trajectory_other_seed_differs():
    a = mol.simulate_molecule(mol.MDConfig(smiles="O", steps=4, seed=7))
    b = mol.simulate_molecule(mol.MDConfig(smiles="O", steps=4, seed=7))
    c = mol.simulate_molecule(mol.MDConfig(smiles="O", steps=4, seed=8))
    np.testing.assert_array_equal(a["R"], b["R"])
    assert not np.allclose(a["R"][-1], c["R"][-1])


def test_write_is_atomic_and_readable_without_pickles(tmp_path, short_run):
    _, out = short_run
    path = mol.write_md17(tmp_path / "ethanol.npz", out)
    with np.load(path, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["R"], out["R"])
        assert str(data["smiles"]) == "CCO"
    assert [p.name for p in tmp_path.iterdir()] == ["ethanol.npz"]


def test_md17_pipeline_reads_the_committed_ethanol_trajectory():
    md17 = pytest.importorskip("graphdyn.data.md17")
    path = FILES / "ethanol_md17.npz"
    with np.load(path, allow_pickle=False) as data:
        assert data["R"].shape == (300, 9, 3) and data["z"].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
        assert float(data["dt"]) == 0.5 and float(data["temperature"]) == 500.0
        # Bonded heavy atoms stay bonded at 500 K: C-C about 1.5 A, C-O about 1.4 A.
        R = data["R"]
        cc = np.linalg.norm(R[:, 0] - R[:, 1], axis=-1)
        co = np.linalg.norm(R[:, 1] - R[:, 2], axis=-1)
        assert 1.35 < cc.mean() < 1.65 and 1.3 < co.mean() < 1.55
        # E and F are consistent along the trajectory: dE ~ -F . dR between neighbouring frames.
        dE = np.diff(data["E"])
        work = -0.5 * ((data["F"][1:] + data["F"][:-1]) * np.diff(R, axis=0)).sum(axis=(1, 2))
        assert np.corrcoef(dE, work)[0, 1] > 0.99
    raw = md17.read_md17(path, with_energy_forces=True)
    assert raw["dt"] == 0.5 and raw["E"].shape == (300,)
    prepared = md17.prepare_md17(raw["R"], raw["z"], recentre=False, path=path)
    # Heavy atoms C, C, O: two bonds and one 2-hop pair, each in both directions.
    assert prepared["positions"].shape == (299, 3, 3) and prepared["z"].tolist() == [6, 6, 8]
    assert prepared["edge_index"].shape == (2, 6)


def test_bad_smiles_is_one_line_error():
    with pytest.raises(GraphdynError, match="invalid SMILES 'C1CC'") as info:
        mol.embed("C1CC")
    assert "\n" not in str(info.value)
    with pytest.raises(GraphdynError, match="charged"):
        mol.parse_smiles("[NH4+]")


def test_bad_config_values_are_rejected():
    with pytest.raises(GraphdynError, match="dt"):
        mol.MDConfig(smiles="C", steps=1, dt=0)
    with pytest.raises(GraphdynError, match="record_every"):
        mol.MDConfig(smiles="C", steps=1, record_every=0)


def test_missing_extra_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_tblite(name, *args, **kwargs):
        if name.startswith("tblite"):
            raise ImportError("No module named 'tblite'", name="tblite")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tblite)
    with pytest.raises(GraphdynError, match=r"pip install graphdyn\[md\]") as info:
        mol.embed("CCO")
    assert "\n" not in str(info.value)


def test_simulate_many_runs_molecules_in_parallel_processes(tmp_path):
    configs = [mol.MDConfig(smiles="O", steps=3, seed=1), mol.MDConfig(smiles="C", steps=3, seed=2)]
    outs = [tmp_path / "water.npz", tmp_path / "methane.npz"]
    seen: dict[int, int] = {}
    paths = mol.simulate_many(configs, outs, jobs=2, progress=lambda k, done: seen.__setitem__(k, done))
    assert paths == outs and seen == {0: 3, 1: 3}
    with np.load(outs[1]) as data:
        assert data["z"].tolist() == [6, 1, 1, 1, 1] and data["R"].shape == (4, 5, 3)
    # A single process gives the same trajectory as the worker did (seeded, one thread).
    again = mol.simulate_molecule(configs[0])
    with np.load(outs[0]) as data:
        np.testing.assert_allclose(data["R"], again["R"], atol=1e-10)


@pytest.mark.slow
def test_long_aspirin_run_stays_near_the_thermostat_temperature():
    config = mol.MDConfig(smiles=mol.MD17_SMILES["aspirin"], steps=2000, temperature=500.0, record_every=10, equilibration=500)
    out = mol.simulate_molecule(config)
    assert np.isfinite(out["E"]).all()
    # Kinetic temperature from finite-difference velocities of the last half.
    from ase.data import atomic_masses

    m = atomic_masses[out["z"]] * 1.66053906660e-27
    v = np.diff(out["R"], axis=0) * 1e-10 / (float(out["dt"]) * 1e-15)
    kinetic = 0.5 * (m[None, :, None] * v**2).sum(axis=(1, 2))
    temp = 2 * kinetic.mean() / (3 * len(m) * 1.380649e-23)
    assert 300 < temp < 700
