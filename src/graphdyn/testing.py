"""Test helpers users import in their own tests: is my model equivariant?

::

    from graphdyn.testing import assert_equivariant

    def test_my_model_is_equivariant():
        assert_equivariant(model, batch)              # raises AssertionError with a table

Every check runs on a float64 deep copy of the model (in eval mode) and a float64 copy of the
batch; the caller's model and batch are never modified. Inputs are typed: positions are
points (rotated and shifted), velocities vectors (rotated, never shifted), node and edge
attributes scalars (only relabelled). See :mod:`graphdyn.evaluation.equivariance` for the
transforms and for what a model's output is expected to do under each of them, including
the per-frame translation that only some models declare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.evaluation.equivariance import (
    TRANSFORMS,
    EquivarianceReport,
    Field,
    check_fields,
    check_model,
    check_rollout,
)

__all__ = ["assert_equivariant", "assert_invariant", "EquivarianceReport", "TRANSFORMS"]


def assert_equivariant(
    model: nn.Module,
    batch: Batch,
    *,
    n_trials: int = 3,
    atol: float = 1e-8,
    rtol: float = 1e-10,
    seed: int = 0,
    transforms: Iterable[str] = TRANSFORMS,
    steps: int | None = None,
) -> EquivarianceReport:
    """Assert that ``model`` commutes with rotations, reflections, translations and node relabelling.

    For each transform ``g`` in ``transforms`` and ``n_trials`` random draws (a different
    rotation for every sample of the batch), the worst ``|f(g.batch) - g.f(batch)|`` over
    every output element is compared with ``atol + rtol * max|f(batch)|`` (``rtol`` only
    forgives round-off on huge outputs, such as a rollout that blows up). ``f`` is:

    * a :class:`~graphdyn.models.base.DynamicsModel`: its prediction ``[B, N, ...]`` in
      target space: a point for ``position`` (it moves with the last observed frame), a
      vector for ``displacement``, ``velocity_change`` and ``acceleration``;
    * a :class:`~graphdyn.simulator.LearnedSimulator`: its prediction and the next state
      ``x`` (point) and ``v`` (vector);
    * with ``steps``: additionally the positions and velocities of every step of a
      ``steps``-long rollout (see :func:`graphdyn.evaluation.equivariance.check_rollout`).

    Outputs are asserted for the transforms the model declares (``model.symmetries``,
    default rotation, reflection, translation, permutation); the others (by default the
    per-frame translation) are measured and shown in parentheses. Features a model
    returns from ``invariant_features(batch)`` are asserted invariant under every transform.

    Multi-channel positions ``[B, T, N, C, D]`` get the same rotation on every channel.

    Returns:
        the :class:`EquivarianceReport` (also when it passes).

    Raises:
        AssertionError: with the report's table, when an asserted deviation exceeds the tolerance.
    """
    report = check_model(model, batch, transforms=transforms, n_trials=n_trials, atol=atol, rtol=rtol, seed=seed)
    if steps is not None:
        roll = check_rollout(model, batch, steps, transforms=transforms, n_trials=n_trials, atol=atol, rtol=rtol, seed=seed)
        report.deviations.extend(roll.deviations)
    if not report.passed:
        raise AssertionError(f"{type(model).__name__} is not equivariant within atol={atol:.1e}:\n{report.table()}")
    return report


def assert_invariant(
    fn: Callable[[Batch], torch.Tensor | dict[str, torch.Tensor | tuple[torch.Tensor, str]]],
    batch: Batch,
    *,
    where: str = "node",
    n_trials: int = 3,
    atol: float = 1e-8,
    rtol: float = 1e-10,
    seed: int = 0,
    transforms: Iterable[str] = TRANSFORMS,
) -> EquivarianceReport:
    """Assert that features computed from a batch are invariant scalars.

    ``fn(batch)`` returns a tensor (or a dict of named tensors) of shape ``[B, N, ...]``
    (``where="node"``: rows follow the node relabelling) or ``[B, E, ...]``
    (``where="edge"``: rows in ``edge_index`` order, which follow the edge shuffle); a dict
    value may also be a pair ``(tensor, where)`` overriding ``where`` for that entry. Use it
    for internal invariants such as EDFT spectra, which must ignore even a different
    translation of every frame. ``fn`` receives float64 batches: build the modules it
    calls in float64.

    Raises:
        AssertionError: with the report's table, when a deviation exceeds the tolerance.
    """

    def fields(b: Batch) -> dict[str, Field]:
        out = fn(b)
        named = out if isinstance(out, dict) else {"features": out}
        pairs = {k: v if isinstance(v, tuple) else (v, where) for k, v in named.items()}
        return {k: Field(value, "scalar", at) for k, (value, at) in pairs.items()}

    report = check_fields(fields, batch, transforms=transforms, n_trials=n_trials, atol=atol, rtol=rtol, seed=seed)
    if not report.passed:
        raise AssertionError(f"features are not invariant within atol={atol:.1e}:\n{report.table()}")
    return report
