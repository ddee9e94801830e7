"""Properties every registered model (and named variant) must have, discovered from the registry.

* it declares its ``symmetries`` and its data ``layouts``;
* ``assert_equivariant`` passes for the symmetries it declares, in every layout it takes;
* a model that is not E(n)-equivariant is shown failing the check once it claims E(n);
* one optimizer step lowers the loss on a fixed batch, in every layout it takes;
* a layout it does not take is refused with a one-line error naming the model.

A registered model whose module is not written yet is skipped with that reason.
"""

from __future__ import annotations

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo
from graphdyn.models.registry import available_models, build_model, model_class
from graphdyn.simulator import LearnedSimulator
from graphdyn.testing import assert_equivariant
from tests.models.test_equivariance_models import ring_batch

T, N = 10, 5
LAYOUTS = {"single": None, "multi": 4}


def _batch(channels):
    batch = ring_batch(channels)
    g = torch.Generator().manual_seed(1)
    shape = (batch.x.shape[0], T) + tuple(batch.x.shape[2:])
    x = torch.randn(shape, generator=g)
    return type(batch)(**{**batch.__dict__, "x": x, "v": torch.randn(shape, generator=g)})


def _info(channels) -> DataInfo:
    return DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=2, T=T, n_nodes=N, has_velocities=True)


def _cases(taken: bool = True, equivariant: bool | None = None):
    """(name, layout) for every model and the layouts it takes (``taken``) or refuses;
    ``equivariant``: only the models whose class claims (True) or does not claim it (False)."""
    out = []
    for name in available_models():
        try:
            cls = model_class(name)
        except ModuleNotFoundError as exc:
            out.append(pytest.param(name, "single", marks=pytest.mark.skip(reason=f"model module not written yet: {exc.name}")))
            continue
        if equivariant is not None and cls.equivariant != equivariant:
            continue
        for layout in LAYOUTS:
            if (layout in cls.layouts) == taken:
                out.append(pytest.param(name, layout, id=f"{name}-{layout}"))
    return out


def _build(name, layout):
    channels = LAYOUTS[layout]
    batch = _batch(channels)
    torch.manual_seed(0)
    return build_model(name, {}, _info(channels)), batch


@pytest.mark.parametrize("name,layout", _cases())
def test_declares_symmetries_and_passes_them(name, layout):
    model, batch = _build(name, layout)
    assert isinstance(getattr(model, "symmetries", None), tuple), f"{name} does not declare its symmetries"
    assert set(model.layouts) <= set(LAYOUTS)
    report = assert_equivariant(model, batch, n_trials=1)
    assert report.get("prediction", "permutation") is not None


@pytest.mark.parametrize("name,layout", _cases(equivariant=False))
def test_non_equivariant_models_fail_when_claiming_e_n(name, layout):
    model, batch = _build(name, layout)
    assert not set(DEFAULT_SYMMETRIES) <= set(model.symmetries)
    model.symmetries = DEFAULT_SYMMETRIES  # claim what it does not have: the check must catch it
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(model, batch, n_trials=1)


@pytest.mark.parametrize("name,layout", _cases())
def test_one_optimizer_step_lowers_the_loss(name, layout):
    model, batch = _build(name, layout)
    model = model.double()
    batch = batch.to(dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]
    sim = LearnedSimulator(model)
    loss0 = sim.loss(batch)
    loss0.backward()
    if not any(p.grad is not None and p.grad.abs().max() > 0 for p in params):
        pytest.skip(f"{name} has nothing to learn (parameter-free)")
    opt = torch.optim.Adam(params, lr=1e-4)
    opt.step()
    with torch.no_grad():
        loss1 = sim.loss(batch)
    assert torch.isfinite(loss1) and loss1 < loss0


@pytest.mark.parametrize("name,layout", _cases(taken=False))
def test_refuses_a_layout_it_does_not_take(name, layout):
    with pytest.raises(GraphdynError, match=f"model '{name}' takes"):
        build_model(name, {}, _info(LAYOUTS[layout]))
