"""ST_SE(3)TR: an SE(3)-Transformer (Fuchs et al. 2020) on every observed frame, pooled over time.

The ESTAG paper's (Wu et al., NeurIPS 2023) ``ST_`` baseline around the SE(3)-Transformer:
:class:`graphdyn.models.st_tfn.STTFN`'s per-frame wrapper (type-0 input = node attribute +
learned time embedding, no type-1 input, the output vector added to the frame's positions,
softmax pooling over the T frames) with attention blocks in place of the hidden TFN layers::

    h_i(t) = W a_i + b + E[t]
    v_i(t) = SE3Att_L( ... SE3Att_1(h(t), x(t)) ... )   gated attention blocks (graphdyn.nn.se3_attention)
    d_i(t) = TFN(v(t), x(t))                            a TFN convolution to one 1o vector per node
    x_hat  = sum_t softmax(theta)_t (x_i(t) + d_i(t))

``layers`` counts the attention blocks and a TFN convolution maps the last one to the output,
as we read the SE(3)-Transformer library's n-body model (unverified for the ESTAG authors'
copy); ``heads`` = 1 is our choice (the spec does not say). Symmetry and shapes as
:mod:`graphdyn.models.st_tfn`.
"""

from __future__ import annotations

from e3nn import o3
from pydantic import Field, model_validator
from torch import nn

from graphdyn.models.st_tfn import STTFN, STTFNParams
from graphdyn.nn.se3_attention import SE3AttentionLayer


class STSE3TransformerParams(STTFNParams):
    heads: int = Field(1, ge=1)  # attention heads; must divide ``channels``

    @model_validator(mode="after")
    def _heads_divide_channels(self) -> "STSE3TransformerParams":
        if self.channels % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide channels ({self.channels})")
        return self


class STSE3Transformer(STTFN):
    """SE(3)-Transformer per frame, softmax pooling over frames; see the module docstring."""

    Params = STSE3TransformerParams

    def _blocks(self, scalars: o3.Irreps, hidden: o3.Irreps) -> list[nn.Module]:
        kw = self._layer_kwargs()
        ins = [scalars] + [hidden] * self.params.layers
        blocks: list[nn.Module] = [SE3AttentionLayer(i, hidden, heads=self.params.heads, **kw) for i in ins[:-1]]
        return blocks + [self._output_layer(ins[-1])]
