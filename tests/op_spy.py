"""A check shared by the op tests: which calls of one op ran its kernel."""

from __future__ import annotations

from graphdyn.ops import backend as ops_backend


def spy_on(monkeypatch, op: str) -> list[bool]:
    """Record, for each call of ``op`` under a backend other than ``torch``, whether the kernel ran."""
    calls: list[bool] = []
    real = ops_backend.use_native

    def f(backend, name, refusal):
        out = real(backend, name, refusal)
        if name == op and backend != "torch":
            calls.append(out)
        return out

    monkeypatch.setattr(ops_backend, "use_native", f)
    return calls
