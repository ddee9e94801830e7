"""Number-for-number parity of :class:`graphdyn.models.estag.ESTAG` with the authors' ESTAG.

A reference fixture (layout in ``shared/fixtures/README.md``) is an ``.npz`` holding

* ``config.kind`` (``"single"`` | ``"multi"``), ``config.T``, ``config.hidden``, ``config.layers``,
  ``config.causal_mask`` (optional ``config.eps``, ``config.act``);
* ``input.x [B, T, N, (C,) D]``, ``input.node_attr [B, N, A]``, ``input.edge_index [2, E]``;
* ``param.<role>``: every parameter, named by its role (``embed.weight``, ``time_embed``,
  ``spectral_gate.weight``, ``pool.weights``, ``layers.{l}.spatial.message.{0,1}.weight``, ...);
* ``expect.<name>``: intermediates of the authors' float64 run (``edft.A``, ``edft.c``,
  ``layers.{l}.spatial.h|x``, ``layers.{l}.temporal.h|x``, ``x_hat``).

:func:`check_reference` builds ESTAG in float64 from the config, copies every role onto the
module's parameters, runs it with a trace of the same intermediates and returns the maximum
absolute deviation per expected array. Any malformed fixture raises :class:`GraphdynError`.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graphdyn.errors import GraphdynError
from graphdyn.io import save_npz
from graphdyn.models.base import DataInfo
from graphdyn.models.estag import ESTAG, ESTAGParams

DEFAULT_TOLERANCE = 1e-8
_REQUIRED_CONFIG = ("kind", "T", "hidden", "layers", "causal_mask")
_REQUIRED_INPUTS = ("x", "node_attr", "edge_index")


@dataclass
class Fixture:
    """A loaded reference fixture: config values, inputs, role-named params, expected arrays."""

    path: Path
    config: dict
    inputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]


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
    for name in _REQUIRED_CONFIG:
        if name not in groups["config"]:
            raise GraphdynError("missing", path=path, field=f"config.{name}")
    for name in _REQUIRED_INPUTS:
        if name not in groups["input"]:
            raise GraphdynError("missing", path=path, field=f"input.{name}")
    if not groups["expect"]:
        raise GraphdynError("no expect.* arrays to compare against", path=path)
    config = {k: v.item() if v.ndim == 0 else v for k, v in groups["config"].items()}
    return Fixture(path, config, groups["input"], groups["param"], groups["expect"])


def _info_and_params(fx: Fixture) -> tuple[DataInfo, ESTAGParams, torch.Tensor, torch.Tensor, torch.Tensor]:
    p, cfg = fx.path, fx.config
    kind = str(cfg["kind"])
    if kind not in ("single", "multi"):
        raise GraphdynError(f"expected 'single' or 'multi', got {kind!r}", path=p, field="config.kind")
    x, a, ei = fx.inputs["x"], fx.inputs["node_attr"], fx.inputs["edge_index"]
    want_ndim = 4 if kind == "single" else 5
    if x.ndim != want_ndim or not np.issubdtype(x.dtype, np.floating):
        raise GraphdynError(f"expected a float array with {want_ndim} axes for kind {kind!r}, got {x.dtype} {x.shape}", path=p, field="input.x")
    B, T, N = x.shape[:3]
    if int(cfg["T"]) != T:
        raise GraphdynError(f"config.T={cfg['T']} but input.x has {T} frames", path=p, field="config.T")
    if a.ndim != 3 or a.shape[:2] != (B, N):
        raise GraphdynError(f"expected shape ({B}, {N}, A), got {a.shape}", path=p, field="input.node_attr")
    if ei.ndim != 2 or ei.shape[0] != 2 or not np.issubdtype(ei.dtype, np.integer):
        raise GraphdynError(f"expected an integer array of shape (2, E), got {ei.dtype} {ei.shape}", path=p, field="input.edge_index")
    if ei.size and (ei.min() < 0 or ei.max() >= N):
        raise GraphdynError(f"node index out of range [0, {N})", path=p, field="input.edge_index")
    channels = None if kind == "single" else int(x.shape[3])
    info = DataInfo(dim=int(x.shape[-1]), channels=channels, node_attr_dim=int(a.shape[2]), edge_attr_dim=0, T=T, n_nodes=N, has_velocities=False)
    kwargs = dict(hidden=int(cfg["hidden"]), layers=int(cfg["layers"]), causal_mask=bool(cfg["causal_mask"]))
    for opt in ("eps", "act"):
        if opt in cfg:
            kwargs[opt] = cfg[opt] if opt == "act" else float(cfg[opt])
    try:
        params = ESTAGParams(**kwargs)
    except Exception as exc:  # pydantic ValidationError: report as a fixture problem
        raise GraphdynError(f"invalid config ({exc.__class__.__name__}: {str(exc).splitlines()[0]})", path=p, field="config") from None
    to = lambda arr: torch.as_tensor(np.asarray(arr))  # noqa: E731
    return info, params, to(x).double(), to(a).double(), to(ei).long()


# role -> module parameter: MLP Linear k sits at Sequential index 2k (activations between).
_MLP_ROLE = re.compile(r"^(layers\.\d+\.(?:spatial|temporal)\.\w+)\.(\d+)\.(weight|bias)$")
_FIXED_ROLES = {
    "embed.weight": "embed.weight",
    "embed.bias": "embed.bias",
    "time_embed": "time_embed.weight",
    "spectral_gate.weight": "edft.spectral_gate.weight",
    "spectral_gate.bias": "edft.spectral_gate.bias",
    "pool.weights": "pool.weights",
}


def role_to_parameter(role: str) -> str | None:
    """The ESTAG parameter name that a fixture role maps to (None: not a known role)."""
    if role in _FIXED_ROLES:
        return _FIXED_ROLES[role]
    m = _MLP_ROLE.match(role)
    if m is None:
        return None
    return f"{m.group(1)}.{2 * int(m.group(2))}.{m.group(3)}"


def build_reference_model(fx: Fixture) -> tuple[ESTAG, dict[str, torch.Tensor]]:
    """ESTAG in float64 carrying the fixture's parameters, and its inputs as tensors."""
    info, params, x, a, ei = _info_and_params(fx)
    model = ESTAG(info, params).double()
    own = dict(model.named_parameters())
    assigned: set[str] = set()
    with torch.no_grad():
        for role, val in fx.params.items():
            name = role_to_parameter(role)
            if name is None or name not in own:
                raise GraphdynError("no parameter of this ESTAG configuration has this role", path=fx.path, field=f"param.{role}")
            if tuple(val.shape) != tuple(own[name].shape):
                raise GraphdynError(f"expected shape {tuple(own[name].shape)}, got {tuple(val.shape)}", path=fx.path, field=f"param.{role}")
            own[name].copy_(torch.as_tensor(np.asarray(val, dtype=np.float64)))
            assigned.add(name)
    missing = sorted(set(own) - assigned)
    if missing:
        raise GraphdynError(f"missing ({len(missing)} parameter(s) absent)", path=fx.path, field=f"param.{parameter_to_role(missing[0])}")
    return model.eval(), {"x": x, "node_attr": a, "edge_index": ei}


def run_reference(fx: Fixture) -> dict[str, np.ndarray]:
    """Run the fixture's model and return every traced intermediate as float64 arrays."""
    model, inp = build_reference_model(fx)
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model.run(inp["x"], inp["node_attr"], inp["edge_index"], trace=trace)
    return {k: v.detach().cpu().numpy() for k, v in trace.items()}


def parameter_to_role(name: str) -> str:
    """Inverse of :func:`role_to_parameter`: the fixture role of an ESTAG parameter name."""
    for role, pname in _FIXED_ROLES.items():
        if pname == name:
            return role
    m = re.match(r"^(.*)\.(\d+)\.(weight|bias)$", name)
    return f"{m.group(1)}.{int(m.group(2)) // 2}.{m.group(3)}" if m else name


def write_fixture(path: str | Path, model: ESTAG, x: torch.Tensor, node_attr: torch.Tensor, edge_index: torch.Tensor) -> None:
    """Write a fixture in the reference layout from one of our own ESTAG models.

    Useful to test the loader on other sizes and to exchange runs with other implementations.
    The model must use the defaults of the authors' configuration apart from ``hidden``,
    ``layers`` and ``causal_mask`` (those are the only config fields written).
    """
    kind = "single" if model.info.channels is None else "multi"
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model.run(x, node_attr, edge_index, trace=trace)
    arrays: dict[str, np.ndarray] = {
        "config.kind": np.array(kind),
        "config.T": np.array(model.info.T),
        "config.hidden": np.array(model.params.hidden),
        "config.layers": np.array(model.params.layers),
        "config.causal_mask": np.array(model.params.causal_mask),
        "input.x": x.detach().cpu().numpy(),
        "input.node_attr": node_attr.detach().cpu().numpy(),
        "input.edge_index": edge_index.detach().cpu().numpy(),
    }
    for name, p in model.named_parameters():
        arrays[f"param.{parameter_to_role(name)}"] = p.detach().cpu().numpy()
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
