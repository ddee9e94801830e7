"""ST_SE(3)TR: the ST_TFN wrapper's checks (shapes, independent frames, softmax pooling, time
embedding, inputs, refusals) and what is its own: attention blocks, then a TFN output convolution."""

from __future__ import annotations

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.models.registry import build_model
from graphdyn.nn.se3_attention import SE3AttentionLayer
from graphdyn.nn.tfn import TFNLayer
from tests.models.test_st_tfn import CHECKS, build, info_for, ring_batch


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_st_se3tr(check):
    check("st_se3tr")


def test_layers_counts_attention_blocks_before_a_tfn_output_convolution():
    model, _ = build("st_se3tr", layers=3)
    assert [type(m) for m in model.layers] == [SE3AttentionLayer] * 3 + [TFNLayer]
    assert str(model.layers[-1].irreps_out) == "1x1o"


def test_heads_are_used_and_must_divide_the_channels():
    model, batch = build("st_se3tr", heads=2)
    assert all(m.heads == 2 for m in model.layers[:-1])
    assert model(batch).shape == batch.target_x.shape
    with pytest.raises(GraphdynError, match="heads"):
        build_model("st_se3tr", {"heads": 3}, info_for(ring_batch(None), None))


def test_attention_weights_inside_the_model_depend_on_the_frame():
    """The attention is real: each frame's geometry gives its own weights over a receiver's edges."""
    model, batch = build("st_se3tr")
    block = model.layers[1]  # the second block sees vector features, so geometry enters its keys
    seen = {}
    block.register_forward_hook(lambda m, args, out: seen.update(args=args))
    model.frames(batch)
    h, x, edge_index, e = seen["args"]
    _, alpha = block(h, x, edge_index, e, return_attention=True)
    assert alpha.shape == (edge_index.shape[1], h.shape[1], 1)
    assert alpha.std(dim=1).max() > 1e-4  # differs across the B*T frames
    sums = torch.zeros(h.shape[0], h.shape[1], 1, dtype=alpha.dtype).index_add_(0, edge_index[0], alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums))
