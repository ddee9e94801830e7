"""FusedAdam / FusedAdamW take the very steps of PyTorch's fused Adam / AdamW, bit for bit."""

import io

import pytest
import torch

from graphdyn.training.optim import FusedAdam, FusedAdamW, make_adam

PAIRS = [(FusedAdam, torch.optim.Adam), (FusedAdamW, torch.optim.AdamW)]


def _params(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_() for s in [(5, 3), (3,), (7,), (2, 2, 2)]]


def _grads(params, step, skip=()):
    g = torch.Generator().manual_seed(100 + step)
    for k, p in enumerate(params):
        p.grad = None if k in skip else torch.randn(p.shape, generator=g, dtype=p.dtype)


def _run(cls, steps, kw, skips=None, lr_at=None):
    params = _params()
    opt = cls(params, fused=True, **kw)
    for t in range(steps):
        _grads(params, t, (skips or {}).get(t, ()))
        if lr_at and t in lr_at:
            opt.param_groups[0]["lr"] = lr_at[t]
        opt.step()
    return params, opt


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=["adam", "adamw"])
@pytest.mark.parametrize("kw", [{"lr": 1e-2}, {"lr": 3e-3, "weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6}])
def test_same_steps_bit_for_bit(ours, theirs, kw):
    """Including a learning-rate change (a scheduler) and steps where a parameter has no gradient
    (PyTorch skips it and its step count falls behind; the counters are shared again later)."""
    skips = {3: (1,), 4: (1, 2)}
    a, opt_a = _run(ours, 9, kw, skips, lr_at={5: 1e-3})
    b, opt_b = _run(theirs, 9, kw, skips, lr_at={5: 1e-3})
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    for p, q in zip(a, b):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a.state[p][key], opt_b.state[q][key]), key
    steps = [float(opt_a.state[p]["step"]) for p in a]
    assert steps == [9.0, 7.0, 8.0, 9.0]  # the skipped parameters' own counts


def _through_file(state_dict):
    """As a checkpoint does (a state dict in memory shares its tensors with the optimizer's state)."""
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf)


def test_adam_with_decoupled_weight_decay_is_adamw():
    """PyTorch's Adam(decoupled_weight_decay=True) is AdamW: the shortcut follows the group's flag."""
    kw = {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}
    a, _ = _run(FusedAdam, 5, kw)
    b, _ = _run(torch.optim.AdamW, 5, {"lr": 1e-2, "weight_decay": 0.1})
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_shortcut_shares_one_counter_and_state_dict_round_trips():
    params = _params()
    opt = FusedAdam(params, lr=1e-2)
    for t in range(3):
        _grads(params, t)
        opt.step()
    counters = {id(opt.state[p]["step"]) for p in params}
    assert len(counters) == 1  # one tensor, incremented once per step
    assert float(opt.state[params[0]]["step"]) == 3.0
    # into PyTorch's Adam and back: the state is PyTorch's layout, with a counter per parameter
    saved = opt.state_dict()
    assert len({id(v["step"]) for v in saved["state"].values()}) == len(params)
    ref = torch.optim.Adam([p.detach().clone().requires_grad_() for p in params], lr=1e-2, fused=True)
    ref.load_state_dict(_through_file(saved))
    again = FusedAdam(params, lr=1e-2)
    again.load_state_dict(_through_file(ref.state_dict()))
    _grads(params, 3)
    for q, p in zip(ref.param_groups[0]["params"], params):
        q.grad = p.grad.clone()
    again.step()
    ref.step()
    for p, q in zip(params, ref.param_groups[0]["params"]):
        assert torch.equal(p, q)


def test_falls_back_where_the_shortcut_does_not_apply():
    """Two parameter groups, amsgrad or a closure: PyTorch's own step, same numbers."""
    for kw, groups in [({"amsgrad": True}, False), ({}, True)]:
        a, b = _params(), _params()
        opt_a = FusedAdam([{"params": a[:2]}, {"params": a[2:], "lr": 1e-3}] if groups else a, lr=1e-2, **kw)
        opt_b = torch.optim.Adam([{"params": b[:2]}, {"params": b[2:], "lr": 1e-3}] if groups else b, lr=1e-2, fused=True, **kw)
        for t in range(4):
            _grads(a, t)
            _grads(b, t)
            opt_a.step(lambda: None) if t == 2 else opt_a.step()
            opt_b.step()
        for p, q in zip(a, b):
            assert torch.equal(p, q)


def test_make_adam_picks_fused_where_supported():
    assert isinstance(make_adam(_params(), "adam", lr=1e-3), FusedAdam)
    assert isinstance(make_adam(_params(), "adamw", lr=1e-3), FusedAdamW)
    complex_params = [torch.zeros(3, dtype=torch.complex64, requires_grad=True)]  # PyTorch's fused kernel refuses these
    opt = make_adam(complex_params, "adam", lr=1e-3)
    assert type(opt) is torch.optim.Adam and not opt.param_groups[0]["fused"]
