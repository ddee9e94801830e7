"""make_adam: PyTorch's public Adam / AdamW, fused where PyTorch's fused kernel takes the parameters."""

import pytest
import torch

from graphdyn.training.optim import make_adam


def _params(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_() for s in [(5, 3), (3,), (2, 2, 2)]]


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_public_optimizer_fused_where_supported(name, cls):
    opt = make_adam(_params(torch.float32), name, lr=1e-3, weight_decay=0.1)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["fused"] is True and group["lr"] == 1e-3 and group["weight_decay"] == 0.1


def test_falls_back_to_default_where_fused_is_not_supported():
    complex_params = [torch.zeros(3, dtype=torch.complex64, requires_grad=True)]  # PyTorch's fused kernel refuses these
    opt = make_adam(complex_params, "adam", lr=1e-3)
    assert type(opt) is torch.optim.Adam and not opt.param_groups[0]["fused"]


def test_explicit_fused_false_wins():
    assert not make_adam(_params(), "adam", lr=1e-3, fused=False).param_groups[0]["fused"]


def test_unknown_name_is_an_error_naming_the_field():
    with pytest.raises(ValueError, match="optimizer"):
        make_adam(_params(), "sgd", lr=1e-3)


def _reference(params, grads_per_step, lr, wd, decoupled, betas=(0.9, 0.999), eps=1e-8):
    """Adam / AdamW written out (float64), as the module docstring of training/optim.py states it."""
    b1, b2 = betas
    out = []
    for k, p0 in enumerate(params):
        p = p0.detach().clone()
        m = torch.zeros_like(p)
        v = torch.zeros_like(p)
        for t, grads in enumerate(grads_per_step, start=1):
            g = grads[k].clone()
            if decoupled:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_steps_match_the_adam_formula_float64(name):
    params = _params()
    start = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(1)
    grads_per_step = [[torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params] for _ in range(5)]
    opt = make_adam(params, name, lr=1e-2, weight_decay=0.1)
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    ref = _reference(start, grads_per_step, 1e-2, 0.1, decoupled=name == "adamw")
    for p, q in zip(params, ref):
        torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-12)
