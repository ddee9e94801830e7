"""The one backend switch of graphdyn's hot ops, and the record of what ran.

Every hot op (:mod:`graphdyn.ops`) has a plain-autograd *reference* (the readable math, the
truth of every test) and may have a *native* implementation: a C kernel registered as a
PyTorch custom op (:mod:`torch.library`). Which one runs is decided by one setting:

* ``"torch"``: the reference, always (any device, any dtype, higher derivatives).
* ``"native"``: the C kernels wherever they take the call (CPU, float32/float64, the widths,
  dimensions and activations they were compiled for; the op's ``native_refusal`` says why
  not otherwise, and the reference runs). Asking for it where the kernels did not build is
  an error naming the build error.
* ``"auto"`` (the default): ``"native"`` where the kernels built, else ``"torch"``.

The setting is chosen once per model, at construction (:func:`configure`, called by
:func:`graphdyn.models.registry.build_model` with the run config's ``model.backend``); where
the config does not say, ``$GRAPHDYN_BACKEND`` decides (for tests and benchmarks), else
``"auto"``. Layers keep the resolved name in their ``backend`` attribute and pass it to the
ops; a layer built by hand starts at ``"auto"``.

What ran is counted per op and implementation (:func:`usage`), with the reason the first
time a native backend fell back to the reference: the run report and ``graphdyn native``
print it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from torch import nn

from graphdyn import native

BACKENDS = ("auto", "torch", "native")
ENV = "GRAPHDYN_BACKEND"

_lock = threading.Lock()
_calls: Counter = Counter()  # (op, "native" | "torch") -> calls
_reasons: dict[str, str] = {}  # op -> why the reference ran under a native backend (first time)


def default() -> str:
    """``$GRAPHDYN_BACKEND`` if set, else ``"auto"``."""
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"${ENV}={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


def resolve(setting: str | None = None) -> str:
    """``"torch"`` or ``"native"`` for a setting (None: :func:`default`); see the module docstring."""
    setting = default() if setting is None else setting
    if setting not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {setting!r}")
    if setting == "torch":
        return "torch"
    if native.available():
        return "native"
    if setting == "native":
        raise RuntimeError(f"backend 'native' asked for, but the native kernels are unavailable: {native.status()['error']}")
    return "torch"


def configure(model: nn.Module, setting: str | None = None) -> str:
    """Resolve ``setting`` once and hand it to every layer of ``model`` that runs hot ops (those
    with a ``backend`` attribute); returns the resolved name."""
    resolved = resolve(setting)
    for module in model.modules():
        if isinstance(getattr(module, "backend", None), str):
            module.backend = resolved
    return resolved


def use_native(backend: str, op: str, refusal: str | None) -> bool:
    """Whether ``op`` runs natively under ``backend`` given the kernel's ``refusal`` (None: it takes
    the call); counts the call either way."""
    if backend == "auto":
        backend = resolve("auto")
    run_native = backend == "native" and refusal is None
    with _lock:
        _calls[(op, "native" if run_native else "torch")] += 1
        if backend == "native" and refusal is not None:
            _reasons.setdefault(op, refusal)
    return run_native


def usage() -> dict[str, dict[str, object]]:
    """Per op: calls that ran ``native`` and ``torch``, and ``reason`` (why the reference ran
    under a native backend, the first time), since the start or :func:`reset_usage`."""
    with _lock:
        ops = sorted({op for op, _ in _calls})
        return {op: {"native": _calls[(op, "native")], "torch": _calls[(op, "torch")],
                     **({"reason": _reasons[op]} if op in _reasons else {})} for op in ops}


def reset_usage() -> None:
    """Forget the counts of :func:`usage`."""
    with _lock:
        _calls.clear()
        _reasons.clear()


def describe_usage(counts: dict[str, dict[str, object]] | None = None) -> list[str]:
    """One line per op: which implementation ran, how often, and why not native where it fell back."""
    counts = usage() if counts is None else counts
    lines = []
    for op, c in counts.items():
        ran = [f"{impl} ({c[impl]} calls)" for impl in ("native", "torch") if c[impl]]
        reason = f"; reference because {c['reason']}" if "reason" in c and c["torch"] else ""
        lines.append(f"{op}: {', '.join(ran) or 'not called'}{reason}")
    return lines
