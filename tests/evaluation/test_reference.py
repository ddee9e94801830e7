"""Parity with the authors' ESTAG, ST_EGNN and ST_GNN on the shared fixtures; our own fixtures of other
sizes (every model write_fixture covers) round-trip; the fixture loader's error paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.evaluation.reference import DEFAULT_TOLERANCE, KINDS, check_reference, load_fixture, write_fixture
from graphdyn.models.base import DataInfo
from graphdyn.models.estag import ESTAG, ESTAGParams
from graphdyn.models.registry import build_model
from shared_fixtures import FIXTURES, needs_fixtures

NAMES = ("estag_reference_single.npz", "estag_reference_multi.npz")


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_shipped_fixture_matches_to_1e_8(name):
    devs = check_reference(FIXTURES / name)
    expected = {"edft.A", "edft.c", "x_hat"} | {f"layers.{l}.{m}.{v}" for l in (0, 1) for m in ("spatial", "temporal") for v in "hx"}
    assert set(devs) == expected
    assert max(devs.values()) <= DEFAULT_TOLERANCE, devs


ST_EXPECTED = {
    "st_egnn_reference.npz": {"layers.0.h", "layers.0.x", "layers.1.h", "layers.1.x", "x_hat"},
    "st_gnn_reference.npz": {"layers.0.h", "layers.1.h", "decoded", "x_hat"},
}


@needs_fixtures
@pytest.mark.parametrize("name", sorted(ST_EXPECTED))
def test_shipped_baseline_fixture_matches_to_1e_8(name):
    devs = check_reference(FIXTURES / name)
    assert set(devs) == ST_EXPECTED[name]
    assert max(devs.values()) <= DEFAULT_TOLERANCE, devs


@needs_fixtures
@pytest.mark.parametrize(
    "name,role",
    [("st_egnn_reference.npz", "layers.1.coord.1.weight"), ("st_egnn_reference.npz", "pool.theta"),
     ("st_gnn_reference.npz", "decoder.1.bias"), ("st_gnn_reference.npz", "time_embed")],
)
def test_perturbed_baseline_parameter_fails_the_check(tmp_path, name, role):
    def nudge(arrays):
        arrays[f"param.{role}"].flat[0] += 1e-5

    devs = check_reference(rewrite(FIXTURES / name, tmp_path / "bad.npz", nudge))
    assert devs["x_hat"] > DEFAULT_TOLERANCE


def rewrite(src: Path, dst: Path, change) -> Path:
    with np.load(src) as data:
        arrays = {k: data[k].copy() for k in data.files}
    change(arrays)
    np.savez(dst, **arrays)
    return dst


@needs_fixtures
@pytest.mark.parametrize("role", ["layers.1.temporal.coord.1.weight", "spectral_gate.bias", "pool.weights"])
def test_perturbed_parameter_fails_the_check(tmp_path, role):
    def nudge(arrays):
        arrays[f"param.{role}"].flat[0] += 1e-5

    devs = check_reference(rewrite(FIXTURES / NAMES[0], tmp_path / "bad.npz", nudge))
    assert devs["x_hat"] > DEFAULT_TOLERANCE


def own_fixture(path: Path, kind: str, B: int, N: int, T: int, layers: int, causal: bool, seed: int) -> Path:
    """A fixture in the reference layout made from our own randomly initialised model."""
    g = torch.Generator().manual_seed(seed)
    C = None if kind == "single" else 3
    node = (N,) + ((C,) if C else ()) + (3,)
    a = torch.arange(N)
    one_way = torch.stack([a, (a + 2) % N])
    edges = torch.cat([one_way, one_way.flip(0)], 1)[:, : 2 * N - 1]  # node 0 loses one incoming edge
    torch.manual_seed(seed)
    info = DataInfo(dim=3, channels=C, node_attr_dim=2, edge_attr_dim=0, T=T, n_nodes=N, has_velocities=False)
    model = ESTAG(info, ESTAGParams(hidden=6, layers=layers, causal_mask=causal)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3, generator=g)
    x = torch.randn(B, T, *node, generator=g, dtype=torch.float64)
    write_fixture(path, model, x, torch.randn(B, N, 2, generator=g, dtype=torch.float64), edges)
    return path


@pytest.mark.parametrize(
    "kind,B,N,T,layers,causal",
    [("single", 1, 6, 4, 3, False), ("multi", 4, 7, 5, 1, True)],
)
def test_any_fixture_in_the_layout_loads_and_round_trips(tmp_path, kind, B, N, T, layers, causal):
    path = own_fixture(tmp_path / "own.npz", kind, B, N, T, layers, causal, seed=3)
    devs = check_reference(path)
    assert len(devs) == 3 + 4 * layers
    assert max(devs.values()) == 0.0


def own_baseline_fixture(path: Path, name: str, C, B: int, N: int, T: int, hidden: int, layers: int, seed: int, K: int = 2, **params) -> Path:
    """A fixture of one of our ST_* baselines with random parameters (edge attributes of width K)."""
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((C,) if C else ()) + (3,)
    a = torch.arange(N)
    one_way = torch.stack([a, (a + 1) % N])
    edges = torch.cat([one_way, one_way.flip(0)], 1)[:, 1:]  # node 0 loses one incoming edge
    info = DataInfo(dim=3, channels=C, node_attr_dim=3, edge_attr_dim=K, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    model = build_model(name, dict(hidden=hidden, layers=layers, **params), info).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3, generator=g)
    x = torch.randn(B, T, *node, generator=g, dtype=torch.float64)
    attr = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
    write_fixture(path, model, x, attr, edges, torch.randn(edges.shape[1], K, generator=g, dtype=torch.float64) if K else None)
    return path


BASELINE_CASES = {
    "st_egnn-single": ("st_egnn", None, 1, 6, 4, 6, 3, {}),
    "st_egnn-multi": ("st_egnn", 3, 3, 7, 5, 5, 1, {"clamp": 2.0}),
    "st_gnn-single": ("st_gnn", None, 2, 5, 3, 7, 2, {"act": "tanh"}),
    "st_gnn-multi": ("st_gnn", 4, 2, 4, 6, 6, 1, {}),
    "st_gmn-multi": ("st_gmn", 4, 2, 6, 3, 5, 2, {"passes": 3}),
}


@pytest.mark.parametrize("case", sorted(BASELINE_CASES))
def test_baseline_fixtures_of_other_sizes_round_trip(tmp_path, case):
    name, C, B, N, T, hidden, layers, params = BASELINE_CASES[case]
    path = own_baseline_fixture(tmp_path / "own.npz", name, C, B, N, T, hidden, layers, seed=5, **params)
    fx = load_fixture(path)
    assert fx.config["kind"] == name and fx.inputs["x"].shape[:3] == (B, T, N)
    devs = check_reference(path)
    per_layer = {"st_egnn": 2, "st_gnn": 1, "st_gmn": 2 * params.get("passes", 2)}[name]
    assert len(devs) == per_layer * layers + (2 if name == "st_gnn" else 1)
    assert max(devs.values()) == 0.0
    # a perturbed expected array fails the check, by about the perturbation
    key = "decoded" if name == "st_gnn" else f"layers.{layers - 1}.x"
    bad = rewrite(path, tmp_path / "bad.npz", lambda arr: arr.__setitem__(f"expect.{key}", arr[f"expect.{key}"] + 1e-6))
    devs = check_reference(bad)
    assert devs[key] > DEFAULT_TOLERANCE and devs["x_hat"] == 0.0


def test_bad_baseline_fixtures_raise_graphdyn_error(tmp_path):
    good = own_baseline_fixture(tmp_path / "good.npz", "st_egnn", None, 2, 5, 3, 4, 2, seed=1)
    gmn = own_baseline_fixture(tmp_path / "gmn.npz", "st_gmn", 2, 1, 4, 3, 4, 1, seed=2)
    cases = {
        "unknown kind": (good, lambda a: a.__setitem__("config.kind", np.array("st_tfn")), "'single', 'multi', 'st_egnn', 'st_gnn', 'st_gmn'"),
        "missing param": (good, lambda a: a.pop("param.layers.1.coord.1.weight"), "param.layers.1.coord.1.weight"),
        "estag role": (good, lambda a: a.__setitem__("param.spectral_gate.bias", np.zeros(1)), "param.spectral_gate.bias"),
        "alias": (good, lambda a: a.__setitem__("param.pool.weights", a.pop("param.pool.theta")), "param.pool.weights"),
        "wrong shape": (good, lambda a: a.__setitem__("param.pool.theta", np.zeros(4)), "param.pool.theta"),
        "edge attr shape": (good, lambda a: a.__setitem__("input.edge_attr", np.zeros((3, 2))), "input.edge_attr"),
        "no edge attr": (good, lambda a: a.pop("input.edge_attr"), "param.layers.0.message.0.weight"),
        "missing hidden": (good, lambda a: a.pop("config.hidden"), "config.hidden"),
        "unknown config": (good, lambda a: a.__setitem__("config.heads", np.array(2)), "config.heads"),
        "bad config value": (gmn, lambda a: a.__setitem__("config.passes", np.array(0)), "config.passes"),
        "single-channel gmn": (gmn, lambda a: a.__setitem__("input.x", a["input.x"][..., 0, :]), "input.x"),
        "stray input": (good, lambda a: a.__setitem__("input.v", a["input.x"]), "input.v"),
    }
    for label, (src, change, needle) in cases.items():
        path = rewrite(src, tmp_path / "case.npz", change)
        with pytest.raises(GraphdynError, match=re.escape(needle)) as err:
            check_reference(path)
        assert "case.npz" in str(err.value) and "\n" not in str(err.value), label
    assert KINDS == ("single", "multi", "st_egnn", "st_gnn", "st_gmn")


def test_bad_fixtures_raise_graphdyn_error(tmp_path):
    good = own_fixture(tmp_path / "good.npz", "single", 2, 5, 4, 2, True, seed=0)
    (tmp_path / "text.npz").write_text("not a zip")
    cases = {
        "missing param": (lambda a: a.pop("param.layers.1.spatial.node.1.bias"), "param.layers.1.spatial.node.1.bias"),
        "unknown role": (lambda a: a.__setitem__("param.layers.0.spatial.gate.0.weight", np.zeros(3)), "gate"),
        "wrong shape": (lambda a: a.__setitem__("param.embed.weight", np.zeros((6, 3))), "param.embed.weight"),
        "bad kind": (lambda a: a.__setitem__("config.kind", np.array("triple")), "config.kind"),
        "T mismatch": (lambda a: a.__setitem__("config.T", np.array(7)), "config.T"),
        "no input": (lambda a: a.pop("input.edge_index"), "input.edge_index"),
        "unknown expect": (lambda a: a.__setitem__("expect.layers.9.spatial.h", np.zeros(2)), "expect.layers.9"),
        "bad edge": (lambda a: a.__setitem__("input.edge_index", a["input.edge_index"] + 10), "input.edge_index"),
        "stray key": (lambda a: a.__setitem__("extra", np.zeros(1)), "extra"),
    }
    for label, (change, needle) in cases.items():
        path = rewrite(good, tmp_path / "case.npz", change)
        with pytest.raises(GraphdynError, match=needle.replace(".", r"\.")):
            check_reference(path)
    for path in (tmp_path / "text.npz", tmp_path / "absent.npz"):
        with pytest.raises(GraphdynError, match=path.name):
            load_fixture(path)
