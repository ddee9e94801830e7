"""Number-for-number parity with the authors' implementations: ESTAG and its ST_* baselines.

A reference fixture (layout in ``shared/fixtures/README.md``) is an ``.npz`` holding

* ``config.kind`` (which model, see :data:`ADAPTERS`), ``config.T``, ``config.hidden``,
  ``config.layers`` and any other hyper-parameter of that model (``config.causal_mask``,
  ``config.eps``, ``config.act``, ``config.passes``, ...);
* ``input.x [B, T, N, (C,) D]``, ``input.node_attr [B, N, A]``, ``input.edge_index [2, E]``,
  optionally ``input.edge_attr [E, K]`` (one graph's, shared by all B graphs and frames);
* ``param.<role>``: every parameter, named by its role (``embed.weight``, ``time_embed``,
  ``layers.{l}.spatial.message.{0,1}.weight``, ``layers.{l}.coord.1.weight``, ``pool.theta``, ...);
* ``expect.<name>``: intermediates of the authors' float64 run (``edft.A``,
  ``layers.{l}.spatial.h``, ``layers.{l}.x``, ``decoded``, ``x_hat``, ...).

``config.kind`` picks a :class:`ModelAdapter`: the registered model it builds, the layout it
reads, and how a role names a parameter. Everything else is one path for every model:
:func:`load_fixture` validates the layout, :func:`build_reference_model` builds the model in
float64 and copies every role onto its parameters, :func:`check_reference` runs it (the model's
``run(x, node_attr, edge_index, edge_attr, trace=...)``) and returns the maximum absolute
deviation per expected array. :func:`write_fixture` writes the same layout from one of our
models. Any malformed fixture raises :class:`GraphdynError` naming the file and the key.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from graphdyn.errors import GraphdynError
from graphdyn.io import save_npz
from graphdyn.models.base import DataInfo, DynamicsModel
from graphdyn.models.registry import model_class

DEFAULT_TOLERANCE = 1e-8
_REQUIRED_INPUTS = ("x", "node_attr", "edge_index")
# a role ``<mlp>.<k>.weight|bias`` names Linear k of an MLP, which sits at Sequential index 2k
# (activations between); the inverse for parameter names
_MLP_ROLE = re.compile(r"^(.+)\.(\d+)\.(weight|bias)$")


@dataclass(frozen=True)
class ModelAdapter:
    """How one model maps onto the fixture layout.

    ``kinds``: the ``config.kind`` values naming it; ``layout_by_kind``: the layout each kind
    fixes (``"single"``/``"multi"``; a kind not listed takes the layout of ``input.x``);
    ``required``: config fields a fixture must state besides ``kind`` and ``T``; ``renamed``:
    roles whose parameter name is not ``prefix`` + the role under the MLP rule.
    """

    model: str
    kinds: tuple[str, ...]
    required: tuple[str, ...] = ("hidden", "layers")
    layout_by_kind: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    prefix: str = ""

    def role_to_parameter(self, role: str) -> str:
        """The parameter name a role maps to (it may not exist in a given model)."""
        if role in self.renamed:
            return self.renamed[role]
        m = _MLP_ROLE.match(role)
        return self.prefix + (f"{m.group(1)}.{2 * int(m.group(2))}.{m.group(3)}" if m else role)

    def parameter_to_role(self, name: str) -> str:
        """Inverse of :meth:`role_to_parameter`."""
        for role, pname in self.renamed.items():
            if pname == name:
                return role
        name = name.removeprefix(self.prefix)
        m = _MLP_ROLE.match(name)
        return f"{m.group(1)}.{int(m.group(2)) // 2}.{m.group(3)}" if m else name

    def kind_of(self, model: DynamicsModel) -> str:
        """The ``config.kind`` a fixture of ``model`` carries."""
        if not self.layout_by_kind:
            return self.kinds[0]
        layout = "single" if model.info.channels is None else "multi"
        return next(k for k, v in self.layout_by_kind.items() if v == layout)


_ST = dict(renamed={"time_embed": "net.time_embed.weight", "pool.theta": "net.pool.weights"}, prefix="net.")
ADAPTERS: tuple[ModelAdapter, ...] = (
    ModelAdapter(
        "estag",
        kinds=("single", "multi"),
        required=("hidden", "layers", "causal_mask"),
        layout_by_kind={"single": "single", "multi": "multi"},
        renamed={
            "time_embed": "time_embed.weight",
            "spectral_gate.weight": "edft.spectral_gate.weight",
            "spectral_gate.bias": "edft.spectral_gate.bias",
        },
    ),
    ModelAdapter("st_egnn", kinds=("st_egnn",), **_ST),
    ModelAdapter("st_gnn", kinds=("st_gnn",), **_ST),
    ModelAdapter("st_gmn", kinds=("st_gmn",), **_ST),
)
_BY_KIND = {kind: a for a in ADAPTERS for kind in a.kinds}
KINDS = tuple(_BY_KIND)


def adapter_for(model: DynamicsModel) -> ModelAdapter:
    """The adapter of one of our models (GraphdynError for a model no fixture layout covers)."""
    for a in ADAPTERS:
        if type(model) is model_class(a.model):
            return a
    raise GraphdynError(f"no reference fixture layout for {type(model).__name__}; covered: {', '.join(a.model for a in ADAPTERS)}")


@dataclass
class Fixture:
    """A loaded reference fixture: config values, inputs, role-named params, expected arrays."""

    path: Path
    config: dict
    inputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]

    @property
    def adapter(self) -> ModelAdapter:
        return _BY_KIND[str(self.config["kind"])]


def load_fixture(path: str | Path) -> Fixture:
    """Read and validate the layout of a reference fixture (not its numbers)."""
    path = Path(path)
    if not path.is_file():
        raise GraphdynError("no such file", path=path)
    if not zipfile.is_zipfile(path):
        raise GraphdynError("not an .npz archive", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GraphdynError(f"not a readable .npz file ({exc})", path=path) from None
    groups: dict[str, dict[str, np.ndarray]] = {"config": {}, "input": {}, "param": {}, "expect": {}}
    for key, val in arrays.items():
        prefix, _, name = key.partition(".")
        if prefix not in groups or not name:
            raise GraphdynError("unexpected key; keys start with config., input., param. or expect.", path=path, field=key)
        groups[prefix][name] = val
    for name in ("kind", "T"):
        if name not in groups["config"]:
            raise GraphdynError("missing", path=path, field=f"config.{name}")
    for name, val in groups["config"].items():
        if val.ndim != 0:
            raise GraphdynError(f"expected a single value, got shape {val.shape}", path=path, field=f"config.{name}")
    config = {k: v.item() for k, v in groups["config"].items()}
    kind = str(config["kind"])
    if kind not in _BY_KIND:
        raise GraphdynError(f"expected one of {', '.join(map(repr, KINDS))}, got {kind!r}", path=path, field="config.kind")
    for name in _BY_KIND[kind].required:
        if name not in config:
            raise GraphdynError("missing", path=path, field=f"config.{name}")
    for name in _REQUIRED_INPUTS:
        if name not in groups["input"]:
            raise GraphdynError("missing", path=path, field=f"input.{name}")
    if not groups["expect"]:
        raise GraphdynError("no expect.* arrays to compare against", path=path)
    return Fixture(path, config, groups["input"], groups["param"], groups["expect"])


def _inputs(fx: Fixture) -> tuple[DataInfo, dict[str, torch.Tensor | None]]:
    """Validate the inputs' shapes against each other and the kind; the data description."""
    p, cfg, adapter = fx.path, fx.config, fx.adapter
    kind = str(cfg["kind"])
    x, a, ei = fx.inputs["x"], fx.inputs["node_attr"], fx.inputs["edge_index"]
    layout = adapter.layout_by_kind.get(kind)
    allowed = (4,) if layout == "single" else (5,) if layout == "multi" else (4, 5)
    if x.ndim not in allowed or not np.issubdtype(x.dtype, np.floating):
        axes = " or ".join(map(str, allowed))
        raise GraphdynError(f"expected a float array with {axes} axes for kind {kind!r}, got {x.dtype} {x.shape}", path=p, field="input.x")
    B, T, N = x.shape[:3]
    if int(cfg["T"]) != T:
        raise GraphdynError(f"config.T={cfg['T']} but input.x has {T} frames", path=p, field="config.T")
    if a.ndim != 3 or a.shape[:2] != (B, N):
        raise GraphdynError(f"expected shape ({B}, {N}, A), got {a.shape}", path=p, field="input.node_attr")
    if ei.ndim != 2 or ei.shape[0] != 2 or not np.issubdtype(ei.dtype, np.integer):
        raise GraphdynError(f"expected an integer array of shape (2, E), got {ei.dtype} {ei.shape}", path=p, field="input.edge_index")
    if ei.size and (ei.min() < 0 or ei.max() >= N):
        raise GraphdynError(f"node index out of range [0, {N})", path=p, field="input.edge_index")
    ea = fx.inputs.get("edge_attr")
    if ea is not None and (ea.ndim != 2 or ea.shape[0] != ei.shape[1] or not np.issubdtype(ea.dtype, np.floating)):
        raise GraphdynError(f"expected a float array of shape ({ei.shape[1]}, K), got {ea.dtype} {ea.shape}", path=p, field="input.edge_attr")
    extra = sorted(set(fx.inputs) - {*_REQUIRED_INPUTS, "edge_attr"})
    if extra:
        raise GraphdynError("unexpected input; inputs are x, node_attr, edge_index and edge_attr", path=p, field=f"input.{extra[0]}")
    info = DataInfo(
        dim=int(x.shape[-1]),
        channels=None if x.ndim == 4 else int(x.shape[3]),
        node_attr_dim=int(a.shape[2]),
        edge_attr_dim=0 if ea is None else int(ea.shape[1]),
        T=T,
        n_nodes=N,
        has_velocities=False,
    )
    to = lambda arr: torch.as_tensor(np.asarray(arr))  # noqa: E731
    tensors = {"x": to(x).double(), "node_attr": to(a).double(), "edge_index": to(ei).long(), "edge_attr": None if ea is None else to(ea).double()}
    return info, tensors


def _build(fx: Fixture, info: DataInfo) -> DynamicsModel:
    """The fixture's model, untrained, from its config (every field but kind and T is a hyper-parameter)."""
    adapter = fx.adapter
    cls = model_class(adapter.model)
    layout = "single" if info.channels is None else "multi"
    if layout not in cls.layouts:
        raise GraphdynError(f"model {adapter.model!r} takes {' or '.join(cls.layouts)}-channel data, got {layout}-channel", path=fx.path, field="input.x")
    kwargs = {k: v for k, v in fx.config.items() if k not in ("kind", "T")}
    try:
        params = cls.Params(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(part) for part in ("config", *err["loc"]))
        problem = "not a hyper-parameter of this model" if err["type"] == "extra_forbidden" else err["msg"]
        raise GraphdynError(f"invalid config: {problem}", path=fx.path, field=loc) from None
    return cls(info, params)


def build_reference_model(fx: Fixture) -> tuple[DynamicsModel, dict[str, torch.Tensor | None]]:
    """The fixture's model in float64 carrying the fixture's parameters, and its inputs as tensors."""
    info, inputs = _inputs(fx)
    adapter = fx.adapter
    model = _build(fx, info).double()
    own = dict(model.named_parameters())
    assigned: set[str] = set()
    with torch.no_grad():
        for role, val in fx.params.items():
            name = adapter.role_to_parameter(role)
            if name not in own or adapter.parameter_to_role(name) != role:  # the second: no aliases
                raise GraphdynError(f"no parameter of this {adapter.model} configuration has this role", path=fx.path, field=f"param.{role}")
            if tuple(val.shape) != tuple(own[name].shape):
                raise GraphdynError(f"expected shape {tuple(own[name].shape)}, got {tuple(val.shape)}", path=fx.path, field=f"param.{role}")
            own[name].copy_(torch.as_tensor(np.asarray(val, dtype=np.float64)))
            assigned.add(name)
    missing = sorted(set(own) - assigned)
    if missing:
        raise GraphdynError(f"missing ({len(missing)} parameter(s) absent)", path=fx.path, field=f"param.{adapter.parameter_to_role(missing[0])}")
    return model.eval(), inputs


def run_reference(fx: Fixture) -> dict[str, np.ndarray]:
    """Run the fixture's model and return every traced intermediate as float64 arrays."""
    model, inp = build_reference_model(fx)
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model.run(inp["x"], inp["node_attr"], inp["edge_index"], inp["edge_attr"], trace=trace)
    return {k: v.detach().cpu().numpy() for k, v in trace.items()}


def write_fixture(
    path: str | Path,
    model: DynamicsModel,
    x: torch.Tensor,
    node_attr: torch.Tensor,
    edge_index: torch.Tensor,
    edge_attr: torch.Tensor | None = None,
) -> None:
    """Write a fixture in the reference layout from one of our own models (ESTAG or an ST_* baseline).

    Every hyper-parameter that is set (not None) is written as ``config.<name>``, so the fixture
    rebuilds the same model; the expected arrays are the model's own trace. Useful to test the
    loader on other sizes and to exchange runs with other implementations.
    """
    adapter = adapter_for(model)
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model.run(x, node_attr, edge_index, edge_attr, trace=trace)
    arrays: dict[str, np.ndarray] = {"config.kind": np.array(adapter.kind_of(model)), "config.T": np.array(model.info.T)}
    for name, val in model.params.model_dump().items():
        if val is not None:
            arrays[f"config.{name}"] = np.array(val)
    arrays["input.x"] = x.detach().cpu().numpy()
    arrays["input.node_attr"] = node_attr.detach().cpu().numpy()
    arrays["input.edge_index"] = edge_index.detach().cpu().numpy()
    if edge_attr is not None:
        arrays["input.edge_attr"] = edge_attr.detach().cpu().numpy()
    for name, p in model.named_parameters():
        arrays[f"param.{adapter.parameter_to_role(name)}"] = p.detach().cpu().numpy()
    for name, val in trace.items():
        arrays[f"expect.{name}"] = val.detach().cpu().numpy()
    save_npz(path, arrays)


def check_reference(path: str | Path) -> dict[str, float]:
    """Maximum absolute deviation of our float64 run from each ``expect.*`` array of ``path``.

    A NaN deviation (non-finite output) is reported as ``inf``.
    """
    fx = load_fixture(path)
    got = run_reference(fx)
    out: dict[str, float] = {}
    for name, want in fx.expected.items():
        if name not in got:
            raise GraphdynError(f"this model produces no intermediate named {name!r}", path=fx.path, field=f"expect.{name}")
        if tuple(want.shape) != tuple(got[name].shape):
            raise GraphdynError(f"expected shape {tuple(got[name].shape)}, got {tuple(want.shape)}", path=fx.path, field=f"expect.{name}")
        dev = float(np.max(np.abs(got[name] - want))) if want.size else 0.0
        out[name] = dev if np.isfinite(dev) else float("inf")
    return out
