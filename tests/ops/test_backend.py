"""The one backend switch: settings, resolution, per-model configuration, the usage record."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.edft import EDFT
from graphdyn.ops import backend

INFO = DataInfo(dim=3, channels=None, node_attr_dim=1, edge_attr_dim=0, T=10, n_nodes=5, has_velocities=False)


def _backends(model) -> set[str]:
    return {m.backend for m in model.modules() if isinstance(getattr(m, "backend", None), str)}


def test_settings_resolve_and_bad_ones_are_refused(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    assert backend.default() == "auto"
    assert backend.resolve("torch") == "torch"
    assert backend.resolve("auto") == ("native" if native.available() else "torch")
    with pytest.raises(ValueError, match="one of auto, torch, native"):
        backend.resolve("cuda")
    monkeypatch.setenv(backend.ENV, "fast")
    with pytest.raises(ValueError, match="GRAPHDYN_BACKEND='fast'"):
        backend.default()
    monkeypatch.setenv(backend.ENV, "torch")
    assert backend.resolve(None) == "torch"


def test_build_model_configures_every_layer_once(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    assert _backends(build_model("estag", {}, INFO, backend="torch")) == {"torch"}
    monkeypatch.setenv(backend.ENV, "torch")  # the environment decides where the config does not
    assert _backends(build_model("estag", {}, INFO)) == {"torch"}
    with pytest.raises(GraphdynError, match="backend must be one of") as err:
        build_model("estag", {}, INFO, backend="gpu")
    assert err.value.field == "model.backend"


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
def test_usage_counts_what_ran_and_says_why_the_reference_ran():
    edft = EDFT(4).double()
    x = torch.randn(3, 2, 5, 3, dtype=torch.float64)
    h = torch.randn(3, 2, 5, 4, dtype=torch.float64)
    edges = torch.tensor([[0, 1, 2], [1, 2, 0]])
    backend.reset_usage()
    backend.configure(edft, "native")
    edft(x, h, edges)
    edft(x.requires_grad_(), h, edges)  # spectra that need gradients: the kernel declines
    backend.configure(edft, "torch")
    edft(x, h, edges)
    use = backend.usage()["edft_edges"]
    assert use["native"] == 1 and use["torch"] == 2 and "gradients" in use["reason"]
    (line,) = backend.describe_usage()
    assert line.startswith("edft_edges: native (1 calls), torch (2 calls); reference because the spectra require gradients")
