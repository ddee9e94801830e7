"""Parity with the authors' ESTAG on the shared fixtures, and the fixture loader's error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.evaluation.reference import DEFAULT_TOLERANCE, check_reference, load_fixture, write_fixture
from graphdyn.models.base import DataInfo
from graphdyn.models.estag import ESTAG, ESTAGParams

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
NAMES = ("estag_reference_single.npz", "estag_reference_multi.npz")
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared fixtures folder not found at {FIXTURES} (clone shared/ beside the repository)")


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_shipped_fixture_matches_to_1e_8(name):
    devs = check_reference(FIXTURES / name)
    expected = {"edft.A", "edft.c", "x_hat"} | {f"layers.{l}.{m}.{v}" for l in (0, 1) for m in ("spatial", "temporal") for v in "hx"}
    assert set(devs) == expected
    assert max(devs.values()) <= DEFAULT_TOLERANCE, devs


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
