"""Every registered model that claims equivariance passes assert_equivariant, untrained.

Models are discovered from the registry, so a new model with ``equivariant = True`` is
checked without editing this file; a registered model whose module is not written yet is
skipped with that reason.
"""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import available_models, build_model, model_class
from graphdyn.testing import assert_equivariant, assert_invariant

T, N, B = 4, 5, 2


def ring_batch(channels: int | None, seed: int = 0) -> Batch:
    """Random windows of a ring with chords, every edge in both directions, velocities included."""
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    a = torch.arange(N)
    one_way = torch.cat([torch.stack([a, (a + 1) % N]), torch.stack([a[:2], a[:2] + 2])], 1)
    edge_index = torch.cat([one_way, one_way.flip(0)], 1)
    return Batch(
        x=torch.randn(B, T, *node, generator=g),
        v=torch.randn(B, T, *node, generator=g),
        target_x=torch.randn(B, *node, generator=g),
        target_v=torch.randn(B, *node, generator=g),
        node_attr=torch.randn(N, 2, generator=g).expand(B, N, 2),
        edge_index=edge_index,
        edge_attr=torch.randn(edge_index.shape[1], 2, generator=g),
        dt=0.1,
    )


def info_for(batch: Batch, channels: int | None) -> DataInfo:
    return DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=2, T=T, n_nodes=N, has_velocities=True)


def equivariant_models() -> list:
    out = []
    for name in available_models():
        try:
            cls = model_class(name)
        except ModuleNotFoundError as exc:
            out.append(pytest.param(name, marks=pytest.mark.skip(reason=f"model module not written yet: {exc.name}")))
            continue
        if getattr(cls, "equivariant", False):
            out.append(name)
    return out


def build(name: str, channels: int | None):
    batch = ring_batch(channels)
    torch.manual_seed(0)
    try:
        model = build_model(name, {}, info_for(batch, channels))
    except GraphdynError as exc:  # a model may refuse a layout, saying so
        pytest.skip(f"{name} does not build for channels={channels}: {exc}")
    return model, batch


@pytest.mark.parametrize("channels", [None, 3], ids=["single", "multi"])
@pytest.mark.parametrize("name", equivariant_models())
def test_registered_equivariant_model_passes(name, channels):
    model, batch = build(name, channels)
    report = assert_equivariant(model, batch, n_trials=2)
    assert report.get("prediction", "rotation").scale > 0  # the check saw a real output


@pytest.mark.parametrize("name", equivariant_models())
def test_registered_equivariant_model_over_a_short_rollout(name):
    model, batch = build(name, None)
    report = assert_equivariant(model, batch, n_trials=1, steps=3, transforms=("rotation", "reflection", "translation", "permutation"))
    assert "x@3" in report.outputs


@pytest.mark.parametrize("channels", [None, 3], ids=["single", "multi"])
def test_estag_edft_features_ignore_per_frame_translations(channels):
    """The spec's promise (§2.8): EDFT features are invariant even to a shift of every frame."""
    pytest.importorskip("graphdyn.models.estag")
    model, batch = build("estag", channels)
    model = model.double()

    def edft(b: Batch) -> dict[str, tuple[torch.Tensor, str]]:
        trace: dict[str, torch.Tensor] = {}
        model.run(b.x, b.node_attr, b.edge_index, b.edge_attr, trace=trace)
        return {"A": (trace["edft.A"], "edge"), "c": (trace["edft.c"], "node")}

    report = assert_invariant(edft, batch, n_trials=2)
    assert report.get("A", "frame_translation").scale > 0 and report.get("c", "frame_translation").scale > 0


def test_estag_output_is_not_per_frame_translation_equivariant():
    """Why frame_translation is not among ESTAG's declared symmetries: its temporal module
    mixes frames through differences, so a per-frame shift changes the prediction."""
    pytest.importorskip("graphdyn.models.estag")
    model, batch = build("estag", None)
    report = assert_equivariant(model, batch, n_trials=1, transforms=("frame_translation",))
    dev = report.get("prediction", "frame_translation")
    assert not dev.asserted and dev.max_abs > 1e-6


@pytest.mark.parametrize("name", ["egnn", "copy_last"])
def test_one_frame_models_move_with_the_frame_they_read(name):
    """A model of one observed frame is equivariant to per-frame shifts exactly when it reads
    the last frame (its output then moves with that frame's shift, as the checker expects)."""
    try:
        model_class(name)
    except ModuleNotFoundError:
        pytest.skip(f"{name} not written yet")
    batch = ring_batch(None)
    for frame, expect_equivariant in ((-1, True), (0, False)):
        torch.manual_seed(0)
        model = build_model(name, {"frame": frame}, info_for(batch, None))
        model.symmetries = ("frame_translation",)  # claim it, so the check asserts it
        if expect_equivariant:
            assert_equivariant(model, batch, n_trials=2, transforms=("frame_translation",))
        else:
            with pytest.raises(AssertionError, match="frame_translation"):
                assert_equivariant(model, batch, n_trials=1, transforms=("frame_translation",))


def test_estag_declares_its_edft_features_to_the_checker():
    """assert_equivariant reports ESTAG's EDFT features (checked under per-frame shifts too)."""
    from graphdyn.models.estag import ESTAG, ESTAGParams

    batch = ring_batch(None)
    info = DataInfo(dim=3, channels=None, node_attr_dim=2, edge_attr_dim=2, T=T, n_nodes=N, has_velocities=True)
    report = assert_equivariant(ESTAG(info, ESTAGParams()), batch, n_trials=1)
    assert {"feature edft.A", "feature edft.c"} <= set(report.outputs)
    frame_shift = [d for d in report.deviations if d.output.startswith("feature edft") and d.transform == "frame_translation"]
    assert frame_shift and all(d.asserted and d.max_abs < 1e-10 for d in frame_shift)
