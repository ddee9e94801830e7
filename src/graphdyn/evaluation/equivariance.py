"""Equivariance checks: transform the inputs, run the model, compare with the transformed output.

For a transform ``g`` and a function ``f`` of a batch (a model's prediction, one simulator
step, a whole rollout, or internal features) the check measures, in float64::

    deviation(g) = max | f(g . batch) - g . f(batch) |      (over every element and trial)

How ``g`` acts depends on what a tensor *is* (its kind), never on its name:

=========  ============================================================================
kind       action of ``g = (R, c_t, sigma)`` (rotation/reflection, per-frame shift, nodes)
=========  ============================================================================
point      ``x -> R x + c``, then nodes relabelled (observed positions; a position output)
vector     ``v -> R v``, never shifted (velocities; displacement, dv, acceleration outputs)
scalar     unchanged except for the node (or edge) relabelling (node_attr, edge_attr)
=========  ============================================================================

Observed positions ``x [B, T, N, ...]`` are points in every frame; frame ``t`` is shifted by
``c_t``. Multi-channel coordinates ``[..., C, D]`` get the same ``R`` and ``c_t`` on every
channel. Each sample of a batch gets its own random ``R`` and shift.

The transforms (:data:`TRANSFORMS`):

* ``rotation``: a random proper rotation ``R`` (``det R = +1``), no shift.
* ``reflection``: a random improper orthogonal ``R`` (``det R = -1``), no shift.
* ``translation``: one random shift ``c`` for the whole window (``c_t = c``).
* ``frame_translation``: a different random shift ``c_t`` for every observed frame.
* ``permutation``: a random relabelling of the nodes, ``x'[a] = x[sigma[a]]``, with
  ``edge_index`` remapped to the new labels and the edge list shuffled (edge attributes
  follow their edges), so neither node nor edge order can matter.

**What a point output is expected to do under a per-frame shift.** A point output is
compared with ``R y + c_{T-1}``: it moves with the *last* observed frame, which is what a
prediction anchored on the last frame does, and what a rollout then keeps doing since every
fed-back frame carries ``c_{T-1}``. For a whole-window translation this is the usual ``y + c``.

**Which transforms a model's output must respect is the model's declaration**, the class
attribute ``symmetries`` (a tuple of transform names); a model without it is expected to
respect :data:`DEFAULT_SYMMETRIES`, the E(n) x S_N symmetries. ``frame_translation`` is not
among the defaults: a per-frame shift is a symmetry of the output only for models that see
each frame up to its own translation (e.g. a model of the last frame only). Spatio-temporal
models such as ESTAG are *not* invariant to it in general: their temporal module mixes
frames through differences ``x_i(s) - x_i(t)``, which a per-frame shift changes. What ESTAG
promises instead is that its EDFT features (frame-centred spectra) ignore per-frame shifts;
a model exposes such internal invariants through an optional method
``invariant_features(batch) -> {name: (tensor, where)}`` (``where`` is ``"node"`` for
``[B, N, ...]`` or ``"edge"`` for ``[B, E, ...]`` in ``edge_index`` order), and every
requested transform, ``frame_translation`` included, is asserted on them. Transforms that
a model does not declare for its output are still measured and reported, but not asserted.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES
from graphdyn.simulator import LearnedSimulator

TRANSFORMS = ("rotation", "reflection", "translation", "frame_translation", "permutation")
KINDS = ("point", "vector", "scalar")
# The kind of a model's prediction for each target space (see graphdyn.models.base).
TARGET_KINDS = {"position": "point", "displacement": "vector", "velocity_change": "vector", "acceleration": "vector"}


@dataclass(frozen=True)
class Field:
    """A tensor a check compares, with what it is.

    ``value [B, L, ...]``: ``L`` is the node axis (``where="node"``) or the edge axis in
    ``edge_index`` order (``where="edge"``); for points and vectors the last axis is ``D``.
    ``asserted``: the transforms under which a deviation is a failure (True: all, False:
    none); under the others it is measured and reported only.
    """

    value: torch.Tensor
    kind: str
    where: str = "node"
    asserted: bool | tuple[str, ...] = True

    def asserted_for(self, transform: str) -> bool:
        return self.asserted if isinstance(self.asserted, bool) else transform in self.asserted


@dataclass(frozen=True)
class Transform:
    """One random group element acting on a batch of ``B`` samples.

    Attributes (each None when the transform does not use it):
        rotation  [B, D, D]  orthogonal matrix per sample; vectors map to ``R v``.
        shift     [B, T, D]  translation of each observed frame.
        node_perm [N]        new node ``a`` is old node ``node_perm[a]``.
        edge_perm [E]        new edge ``e`` is old edge ``edge_perm[e]``.
    """

    name: str
    rotation: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    node_perm: torch.Tensor | None = None
    edge_perm: torch.Tensor | None = None

    # ------------------------------------------------------------- tensors
    def rotate(self, y: torch.Tensor) -> torch.Tensor:
        """``y [B, ..., D] -> R y`` per sample."""
        if self.rotation is None:
            return y
        return torch.einsum("bij,b...j->b...i", self.rotation, y)

    def _shift_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Observed points ``x [B, T, N, ..., D]`` shifted frame by frame."""
        if self.shift is None:
            return x
        B, T, D = self.shift.shape
        return x + self.shift.view(B, T, *([1] * (x.dim() - 3)), D)

    def _shift_last(self, y: torch.Tensor) -> torch.Tensor:
        """A point output ``y [B, ...L, D]`` shifted by the last observed frame's shift."""
        if self.shift is None:
            return y
        c = self.shift[:, -1]
        return y + c.view(c.shape[0], *([1] * (y.dim() - 2)), c.shape[1])

    def _relabel(self, y: torch.Tensor, axis: int, where: str = "node") -> torch.Tensor:
        perm = self.node_perm if where == "node" else self.edge_perm
        return y if perm is None else y.index_select(axis, perm.to(y.device))

    def act(self, f: Field) -> torch.Tensor:
        """``g . f``: the value ``f`` is expected to take on the transformed batch."""
        y = f.value
        if f.kind == "point":
            y = self._shift_last(self.rotate(y))
        elif f.kind == "vector":
            y = self.rotate(y)
        return self._relabel(y, 1, f.where)

    # ------------------------------------------------------------- batches
    def apply(self, batch: Batch) -> Batch:
        """The transformed batch ``g . batch`` (a new Batch; ``batch`` is not modified)."""
        x = self._relabel(self._shift_frames(self.rotate(batch.x)), 2)
        v = None if batch.v is None else self._relabel(self.rotate(batch.v), 2)
        target_x = self._relabel(self._shift_last(self.rotate(batch.target_x)), 1)
        target_v = None if batch.target_v is None else self._relabel(self.rotate(batch.target_v), 1)
        node_attr = self._relabel(batch.node_attr, 1)
        edge_index, edge_attr = batch.edge_index, batch.edge_attr
        if self.node_perm is not None:
            # old node sigma[a] is called a now, so old label i becomes inverse[i]
            inverse = torch.empty_like(self.node_perm)
            inverse[self.node_perm] = torch.arange(len(self.node_perm), device=inverse.device)
            edge_index = inverse.to(edge_index.device)[edge_index]
        if self.edge_perm is not None:
            perm = self.edge_perm.to(edge_index.device)
            edge_index = edge_index[:, perm]
            edge_attr = None if edge_attr is None else edge_attr.index_select(edge_attr.dim() - 2, perm)
        return replace(batch, x=x, v=v, target_x=target_x, target_v=target_v, node_attr=node_attr, edge_index=edge_index, edge_attr=edge_attr)


def random_orthogonal(n: int, dim: int, *, proper: bool, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` Haar-random orthogonal ``dim x dim`` matrices with ``det = +1`` (proper) or ``-1``.

    QR of a Gaussian matrix with the signs of ``diag(R)`` moved into ``Q`` is Haar-distributed
    on O(dim); flipping the first column of those with the wrong determinant keeps that.
    Shapes: ``-> [n, dim, dim]``.
    """
    a = torch.randn(n, dim, dim, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    wrong = torch.linalg.det(q) < 0 if proper else torch.linalg.det(q) > 0
    q[wrong, :, 0] = -q[wrong, :, 0]
    return q


def random_transform(name: str, batch: Batch, generator: torch.Generator) -> Transform:
    """A random element of kind ``name`` (see :data:`TRANSFORMS`) sized for ``batch``.

    Shifts are Gaussian with a scale of the data's extent (at least 1), so a model that
    reads absolute positions cannot hide behind a shift that is small next to them.
    """
    if name not in TRANSFORMS:
        raise GraphdynError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}", field="transforms")
    B, T, N = batch.x.shape[:3]
    D = batch.x.shape[-1]
    dev = batch.x.device
    if name in ("rotation", "reflection"):
        R = random_orthogonal(B, D, proper=name == "rotation", generator=generator)
        return Transform(name, rotation=R.to(dev))
    if name in ("translation", "frame_translation"):
        scale = max(1.0, float(batch.x.detach().abs().max()))
        frames = 1 if name == "translation" else T
        c = scale * torch.randn(B, frames, D, generator=generator, dtype=torch.float64)
        return Transform(name, shift=c.expand(B, T, D).contiguous().to(dev))
    E = batch.edge_index.shape[1]
    return Transform(name, node_perm=torch.randperm(N, generator=generator), edge_perm=torch.randperm(E, generator=generator))


# ---------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class Deviation:
    """The worst deviation of one output under one transform (over all trials).

    ``scale`` is ``max |f(batch)|``, to read ``max_abs`` against; ``asserted`` False when
    the output is not declared to respect the transform (reported for information only).
    """

    transform: str
    output: str
    max_abs: float
    scale: float
    asserted: bool


@dataclass
class EquivarianceReport:
    """Worst deviations per (output, transform).

    ``failures`` are the asserted deviations above ``atol + rtol * scale``: ``rtol`` lets
    round-off of large outputs (an unstable rollout reaching 1e6) pass, and is kept tiny.
    """

    atol: float
    rtol: float = 0.0
    deviations: list[Deviation] = field(default_factory=list)
    n_trials: int = 1
    notes: list[str] = field(default_factory=list)

    def failed(self, d: Deviation) -> bool:
        # not (dev <= tol) so that NaN deviations count as failures
        return d.asserted and not d.max_abs <= self.atol + self.rtol * d.scale

    @property
    def failures(self) -> list[Deviation]:
        return [d for d in self.deviations if self.failed(d)]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def outputs(self) -> list[str]:
        return list(dict.fromkeys(d.output for d in self.deviations))

    @property
    def transforms(self) -> list[str]:
        return list(dict.fromkeys(d.transform for d in self.deviations))

    def get(self, output: str, transform: str) -> Deviation | None:
        for d in self.deviations:
            if d.output == output and d.transform == transform:
                return d
        return None

    def worst(self, transform: str | None = None, *, asserted_only: bool = True) -> float:
        """The largest deviation (of one transform, or all); 0.0 when nothing matches."""
        vals = [d.max_abs for d in self.deviations if (transform is None or d.transform == transform) and (d.asserted or not asserted_only)]
        if any(math.isnan(v) for v in vals):
            return math.nan
        return max(vals, default=0.0)

    def rows(self, outputs: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
        """Header and cells of the table: one row per output, one column per transform.

        A cell is the worst absolute deviation; ``FAIL`` marks an asserted one above the
        tolerance; parentheses mark one that is only reported (not declared).
        """
        header = ["output", "|f|max", *self.transforms]
        body = []
        for out in outputs if outputs is not None else self.outputs:
            cells = [out]
            scale = max((d.scale for d in self.deviations if d.output == out), default=0.0)
            cells.append(f"{scale:.2e}")
            for t in self.transforms:
                d = self.get(out, t)
                if d is None:
                    cells.append("-")
                elif not d.asserted:
                    cells.append(f"({d.max_abs:.1e})")
                else:
                    cells.append(f"{d.max_abs:.1e}" + (" FAIL" if self.failed(d) else ""))
            body.append(cells)
        return header, body

    def table(self, outputs: Sequence[str] | None = None) -> str:
        """A plain-text table of :meth:`rows`, with a verdict line."""
        header, body = self.rows(outputs)
        widths = [max(len(r[k]) for r in [header, *body]) for k in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header, *body]]
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} above atol)"
        tol = f"atol={self.atol:.1e}" + (f" + rtol={self.rtol:.1e} * |f|max" if self.rtol else "")
        lines.append(f"worst |f(g.batch) - g.f(batch)| over {self.n_trials} trial(s), float64; {tol}: {verdict}")
        lines.extend(self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the check
def _validate(transforms: Iterable[str], n_trials: int) -> tuple[str, ...]:
    transforms = tuple(transforms)
    for t in transforms:
        if t not in TRANSFORMS:
            raise GraphdynError(f"unknown transform {t!r}; choose from {', '.join(TRANSFORMS)}", field="transforms")
    if n_trials < 1:
        raise GraphdynError(f"n_trials must be at least 1, got {n_trials}", field="n_trials")
    return transforms


FieldFn = Callable[[Batch], dict[str, Field]]


def _check_shapes(fields: dict[str, Field], batch: Batch) -> None:
    """Fail early and clearly when a field's rows are not the nodes or edges it claims."""
    sizes = {"node": batch.n_nodes, "edge": batch.edge_index.shape[1]}
    D = batch.x.shape[-1]
    for name, f in fields.items():
        if f.kind not in KINDS or f.where not in sizes:
            raise ValueError(f"{name}: kind must be one of {KINDS} and where 'node' or 'edge', got {f.kind!r}, {f.where!r}")
        v = f.value
        if v.dim() < 2 or v.shape[0] != batch.batch_size or v.shape[1] != sizes[f.where]:
            raise ValueError(f"{name}: expected [B={batch.batch_size}, {f.where}s={sizes[f.where]}, ...], got {list(v.shape)}")
        if f.kind != "scalar" and v.shape[-1] != D:
            raise ValueError(f"{name}: a {f.kind} needs a last axis of D={D}, got {list(v.shape)}")


def check_fields(
    fn: FieldFn,
    batch: Batch,
    *,
    transforms: Iterable[str] = TRANSFORMS,
    n_trials: int = 3,
    atol: float = 1e-8,
    rtol: float = 1e-10,
    seed: int = 0,
) -> EquivarianceReport:
    """The core check: ``fn(g . batch)`` against ``g . fn(batch)`` for random ``g``.

    Args:
        fn: batch -> named :class:`Field` s. It receives float64 batches (the check casts
            ``batch``), so any module it calls must be float64 too. A field's ``asserted``
            decides whether its deviation can fail the check.
        batch: the batch, unchanged by the check.
        transforms: names from :data:`TRANSFORMS`.
        n_trials: random elements drawn per transform (each with per-sample rotations).
        atol, rtol: a deviation fails above ``atol + rtol * max|f(batch)|`` (per output).
        seed: seeds every random element, so a report is reproducible.
    """
    transforms = _validate(transforms, n_trials)
    batch = batch.to(dtype=torch.float64)
    with torch.no_grad():
        base = fn(batch)
        _check_shapes(base, batch)
        report = EquivarianceReport(atol=atol, rtol=rtol, n_trials=n_trials)
        for t in transforms:
            # one generator per transform: its draws do not depend on which others run
            gen = torch.Generator().manual_seed(seed * len(TRANSFORMS) + TRANSFORMS.index(t))
            worst = {name: 0.0 for name in base}
            for _ in range(n_trials):
                g = random_transform(t, batch, gen)
                moved = fn(g.apply(batch))
                for name, f in base.items():
                    diff = (moved[name].value - g.act(f)).abs()
                    dev = float(diff.max()) if diff.numel() else 0.0
                    worst[name] = dev if math.isnan(dev) else max(worst[name], dev)
            for name, f in base.items():
                scale = float(f.value.abs().max()) if f.value.numel() else 0.0
                report.deviations.append(Deviation(t, name, worst[name], scale, f.asserted_for(t)))
    return report


# ---------------------------------------------------------------------------- models
def _core(model: nn.Module) -> nn.Module:
    """The DynamicsModel inside a LearnedSimulator, or the model itself."""
    return model.model if isinstance(model, LearnedSimulator) else model


def declared_symmetries(model: nn.Module) -> tuple[str, ...]:
    """The transforms ``model``'s output claims to respect (``model.symmetries`` or the default)."""
    declared = getattr(_core(model), "symmetries", None)
    if declared is None:
        return DEFAULT_SYMMETRIES
    declared = tuple(declared)
    bad = [s for s in declared if s not in TRANSFORMS]
    if bad:
        raise GraphdynError(f"model declares unknown symmetries {bad}; choose from {', '.join(TRANSFORMS)}", field="symmetries")
    return declared


def float64_copy(model: nn.Module) -> nn.Module:
    """A float64, eval-mode deep copy of ``model``; the caller's model is left untouched."""
    twin = copy.deepcopy(model)
    return twin.to(torch.float64).eval()


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    if p is None:
        p = next(iter(model.buffers()), None)
    return torch.device("cpu") if p is None else p.device


def _prepare(model: nn.Module, batch: Batch) -> tuple[nn.Module, Batch]:
    twin = float64_copy(model)
    return twin, batch.to(device=_device(twin), dtype=torch.float64)


def _feature_fields(core: nn.Module, batch: Batch) -> dict[str, Field]:
    """A model's declared invariant features (see the module docstring), as scalar fields."""
    hook = getattr(core, "invariant_features", None)
    if hook is None:
        return {}
    out = {}
    for name, (value, where) in hook(batch).items():
        if where not in ("node", "edge"):
            raise GraphdynError(f"invariant feature {name!r}: where must be 'node' or 'edge', got {where!r}", field="invariant_features")
        out[f"feature {name}"] = Field(value, "scalar", where)
    return out


def _simulator(model: nn.Module) -> nn.Module:
    return model if isinstance(model, LearnedSimulator) else LearnedSimulator(model)


def check_model(
    model: nn.Module,
    batch: Batch,
    *,
    transforms: Iterable[str] = TRANSFORMS,
    n_trials: int = 3,
    atol: float = 1e-8,
    rtol: float = 1e-10,
    seed: int = 0,
) -> EquivarianceReport:
    """Check one prediction of a DynamicsModel or one step of a LearnedSimulator, in float64.

    Outputs: ``prediction`` (a point for target ``position``, a vector otherwise, see
    :data:`TARGET_KINDS`) and, for a simulator, the next state ``step x`` (point) and
    ``step v`` (vector, when the data has velocities); plus any ``invariant_features``.
    Outputs are asserted for the model's :func:`declared_symmetries`; features for every
    transform.
    """
    is_sim = isinstance(model, LearnedSimulator)
    twin, b64 = _prepare(model, batch)
    core = _core(twin)
    kind = TARGET_KINDS[core.target]
    ok = declared_symmetries(core)

    def fn(b: Batch) -> dict[str, Field]:
        fields = {}
        if is_sim:
            pred = twin.predict(b)
            fields["prediction"] = Field(pred, kind, asserted=ok)
            x_next, v_next = twin.integrate(b, pred)
            fields["step x"] = Field(x_next, "point", asserted=ok)
            if v_next is not None:
                fields["step v"] = Field(v_next, "vector", asserted=ok)
        else:
            fields["prediction"] = Field(twin(b), kind, asserted=ok)
        fields.update(_feature_fields(core, b))
        return fields

    return _with_note(check_fields(fn, b64, transforms=transforms, n_trials=n_trials, atol=atol, rtol=rtol, seed=seed), ok)


def check_rollout(
    model: nn.Module,
    batch: Batch,
    steps: int,
    *,
    transforms: Iterable[str] = TRANSFORMS,
    n_trials: int = 1,
    atol: float = 1e-8,
    rtol: float = 1e-10,
    seed: int = 0,
) -> EquivarianceReport:
    """Roll out ``steps`` steps from ``g . batch`` and compare with ``g`` applied to the rollout.

    ``model`` is a LearnedSimulator (a DynamicsModel is wrapped in one). Outputs, one per
    rollout step ``k = 1..steps``: ``x@k`` (point) and ``v@k`` (vector, when the data has
    velocities), so the report shows how a deviation grows along the rollout. Asserted
    for the model's :func:`declared_symmetries`, in float64.
    """
    if steps < 1:
        raise GraphdynError(f"rollout steps must be at least 1, got {steps}", field="steps")
    twin, b64 = _prepare(_simulator(model), batch)
    ok = declared_symmetries(twin)
    width = len(str(steps))

    def fn(b: Batch) -> dict[str, Field]:
        xs, vs = twin.rollout(b, steps)
        fields = {}
        for k in range(steps):
            fields[f"x@{k + 1:0{width}d}"] = Field(xs[:, k], "point", asserted=ok)
        if vs is not None:
            for k in range(steps):
                fields[f"v@{k + 1:0{width}d}"] = Field(vs[:, k], "vector", asserted=ok)
        return fields

    return _with_note(check_fields(fn, b64, transforms=transforms, n_trials=n_trials, atol=atol, rtol=rtol, seed=seed), ok)


def _with_note(report: EquivarianceReport, declared: tuple[str, ...]) -> EquivarianceReport:
    skipped = [t for t in report.transforms if t not in declared]
    if skipped:
        report.notes.append(f"(parentheses): not declared by the model (symmetries={declared}), reported only: {', '.join(skipped)}")
    return report
