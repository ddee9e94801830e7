"""The model interface shared by every graphdyn model.

A model *predicts*; it never integrates. ``forward(batch)`` returns a tensor ``[B, N, ...]``
(the node shape of the data, ``D`` or ``C, D``) in the model's ``target`` space:

===================  ============================================================
``target``           meaning of the prediction (``x``: last observed frame)
===================  ============================================================
``position``         the next position itself, ``x(T)``
``displacement``     ``x(T) - x(T-1)``
``velocity_change``  ``v(T) - v(T-1)`` (the notebook's first model)
``acceleration``     ``(v(T) - v(T-1)) / dt`` (the notebook's second model)
===================  ============================================================

:class:`graphdyn.simulator.LearnedSimulator` turns any of these into the next state, so
training, rollouts and evaluation never care which target a model learned.

Each model declares its hyper-parameters as a pydantic ``Params`` class (unknown keys are
errors) and is built from those and a :class:`DataInfo`, which describes the data shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError

TARGETS = ("position", "displacement", "velocity_change", "acceleration")
#: what an equivariant model's output respects unless it declares ``symmetries``: E(n) x S_N
DEFAULT_SYMMETRIES = ("rotation", "reflection", "translation", "permutation")


@dataclass(frozen=True)
class DataInfo:
    """Shapes of the data a model is built for."""

    dim: int  # spatial dimensions D
    channels: int | None  # coordinate channels C per node, None for single-channel
    node_attr_dim: int  # A
    edge_attr_dim: int  # K (0 when there are no edge attributes)
    T: int  # observed frames per sample
    n_nodes: int
    has_velocities: bool

    @property
    def node_shape(self) -> tuple[int, ...]:
        return (self.dim,) if self.channels is None else (self.channels, self.dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def single_frame_symmetries(info: DataInfo, frame: int) -> tuple[str, ...]:
    """Symmetries of a model that reads only observed frame ``frame`` (Python indexing).

    Reading the last frame, its output moves with that frame's own shift, so it also respects
    a different translation per frame. Raises GraphdynError when ``frame`` is out of range.
    """
    if not -info.T <= frame < info.T:
        raise GraphdynError(f"frame {frame} is outside the {info.T} observed frames", field="model.params.frame")
    return (*DEFAULT_SYMMETRIES, "frame_translation") if frame % info.T == info.T - 1 else DEFAULT_SYMMETRIES


class Params(BaseModel):
    """Base of every model's hyper-parameter class: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class DynamicsModel(nn.Module):
    """Base class: subclasses set ``target``, ``Params`` and implement ``forward``.

    Class attributes:
        target: one of :data:`TARGETS` (may be overridden per instance from params).
        needs_velocities: the model reads ``batch.v``.
        last_frame_only: the model reads the last observed frame and nothing before it, so a
            window of ``T > 1`` frames would be ignored (the trainer refuses it); models that
            read one frame of their choice (``frame``) leave it False.
        equivariant: the model claims E(n) equivariance (checked by the test suite with
            :func:`graphdyn.testing.assert_equivariant`).
        symmetries: optional tuple of the transforms the output respects, from
            ``rotation``, ``reflection``, ``translation``, ``frame_translation`` (a different
            shift per observed frame) and ``permutation``; without it the checker expects
            :data:`DEFAULT_SYMMETRIES` (E(n) x S_N).
        layouts: the data layouts the model takes: ``"single"`` (one D-vector per node,
            ``x [B, T, N, D]``) and/or ``"multi"`` (C D-vectors per node, ``x [B, T, N, C, D]``,
            e.g. AdK's backbone N, CA, C, O); :func:`graphdyn.models.build_model` refuses others.
        Params: pydantic model of the hyper-parameters.

    A model may also define ``invariant_features(batch) -> {name: (tensor, "node"|"edge")}``:
    internal features (e.g. ESTAG's EDFT) that the checker asserts invariant under every
    transform, per-frame translations included.
    """

    target: str = "position"
    needs_velocities: ClassVar[bool] = False
    last_frame_only: ClassVar[bool] = False
    equivariant: ClassVar[bool] = False
    layouts: ClassVar[tuple[str, ...]] = ("single", "multi")
    Params: ClassVar[type[Params]] = Params

    def __init__(self, info: DataInfo, params: Params):
        super().__init__()
        self.info = info
        self.params = params

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
