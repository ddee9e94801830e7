"""Every op against every available backend: the reference is the truth (float64).

For each op of :data:`graphdyn.ops.OPS` and each of its ``cases()``: every backend gives the
reference's values and gradients (of every input that requires them, under a random upstream
gradient); ``torch.autograd.gradcheck`` holds for every backend; the native custom ops pass
``torch.library.opcheck`` (schema, fake implementation, autograd registration); and the native
backend really ran the kernel (the usage counts say so).
"""

from __future__ import annotations

import pytest
import torch

from graphdyn import native, ops
from graphdyn.ops import backend as ops_backend

BACKENDS = ["torch"] + (["native"] if native.available() else [])
CASES = [(name, k) for name, module in ops.OPS.items() for k in range(len(module.cases()))]


def _outputs(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _run(module, args, kwargs, backend):
    """Outputs and the gradients of every input requiring one, under a fixed random upstream gradient."""
    outs = _outputs(getattr(module, module.NAME)(*args, **kwargs, backend=backend))
    inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    live = [o for o in outs if o.requires_grad]
    gen = torch.Generator().manual_seed(1)
    grads = torch.autograd.grad(live, inputs, [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in live],
                                allow_unused=True) if live and inputs else []
    return [o.detach() for o in outs], [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,k", CASES)
def test_backend_matches_reference(name, k, backend):
    module = ops.OPS[name]
    args, kwargs = module.cases()[k]
    ref_out = _outputs(module.reference(*args, **kwargs))
    ops_backend.reset_usage()
    outs, grads = _run(module, args, kwargs, backend)
    ran = ops_backend.usage()[name]
    assert ran[backend] >= 1 and ran["torch" if backend == "native" else "native"] == 0, ran
    for got, want in zip(outs, ref_out):
        torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
    _, ref_grads = _run(module, args, kwargs, "torch")
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,k", CASES)
def test_gradcheck(name, k, backend):
    module = ops.OPS[name]
    args, kwargs = module.cases()[k]
    where = [n for n, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    if not where:
        pytest.skip("no input of this case requires a gradient")

    def f(*diff):
        full = list(args)
        for n, t in zip(where, diff):
            full[n] = t
        return tuple(o for o in _outputs(getattr(module, module.NAME)(*full, **kwargs, backend=backend)) if o.requires_grad)

    assert torch.autograd.gradcheck(f, [args[n] for n in where], eps=1e-6, atol=1e-8)


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
@pytest.mark.parametrize("name,k", CASES)
def test_native_custom_ops_pass_opcheck(name, k):
    module = ops.OPS[name]
    args, kwargs = module.cases()[k]
    op, op_args = module.native_call(*args, **kwargs)
    torch.library.opcheck(op, op_args)
