"""Adam and AdamW exactly as PyTorch's fused implementation, with less per-step overhead.

``torch.optim.Adam(..., fused=True)`` spends most of a step of a small model outside its kernel:
the optimizer's Python bookkeeping (rebuilding the lists of parameters, gradients and state
every step) and incrementing one step counter per parameter tensor (``torch._foreach_add_``).

:class:`FusedAdam` and :class:`FusedAdamW` call the same kernel (``torch._fused_adam_`` /
``torch._fused_adamw_``) on the same per-parameter tensors, so every number is the same bit for
bit, but keep the lists between steps and give every parameter one shared step-counter tensor
while all of them have taken the same number of steps. ``benchmarks/adam_step.py`` times both:
on a 2-core CPU, 409 against 186 us per step for ESTAG's 58 parameter tensors, 66 against 30 us
for the spring model's 8 (docs/benchmarks.md).

Whenever the shortcut's conditions fail, a step is PyTorch's own ``step``:

* the first step (PyTorch creates the state), a ``closure``, or AMP's grad scaler;
* a parameter without a gradient this step (PyTorch skips it, so its step count falls behind:
  the counters are made separate again before PyTorch's step, and shared again once equal);
* more than one parameter group, parameters of several devices or dtypes, or any of
  ``amsgrad``, ``maximize``, ``capturable``, ``differentiable``, complex parameters, or a tensor
  learning rate.

``state_dict`` and ``load_state_dict`` are PyTorch's: checkpoints move freely between these
classes and ``torch.optim.Adam`` / ``AdamW``.
"""

from __future__ import annotations

from typing import Any

import torch


class _SharedStepFused:
    """The shortcut described in the module docstring, mixed into Adam and AdamW (fused=True)."""

    def __init__(self, params, **kwargs: Any) -> None:
        kwargs.setdefault("fused", True)
        super().__init__(params, **kwargs)  # type: ignore[call-arg]
        self._lists: tuple[list, list, list, list] | None = None  # params, exp_avgs, exp_avg_sqs, [shared step] * n

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's, with a step counter of its own for every parameter: a shared counter saved
        and loaded into PyTorch's Adam would be incremented once per parameter."""
        sd = super().state_dict()  # type: ignore[misc]
        sd["state"] = {k: ({**v, "step": v["step"].clone()} if "step" in v else v) for k, v in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # type: ignore[misc]
        for state in self.state.values():  # type: ignore[attr-defined]
            if "step" in state:  # loaded counters may be one shared tensor (see state_dict)
                state["step"] = state["step"].clone()
        self._lists = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)  # type: ignore[misc]
        self._lists = None

    def _shortcut_lists(self) -> tuple[list, list, list, list] | None:
        """The cached lists, rebuilt when needed; None where the shortcut does not apply."""
        if self._lists is not None:
            return self._lists
        if len(self.param_groups) != 1:  # type: ignore[attr-defined]
            return None
        group = self.param_groups[0]  # type: ignore[attr-defined]
        if not group.get("fused") or group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]:
            return None
        if isinstance(group["lr"], torch.Tensor):
            return None
        params = list(group["params"])
        if not params or len({(p.device, p.dtype) for p in params}) != 1 or params[0].is_complex():
            return None
        states = [self.state.get(p) for p in params]  # type: ignore[attr-defined]
        if any(not s or "exp_avg" not in s for s in states):
            return None  # PyTorch's first step creates the state
        steps = {float(s["step"]) for s in states}
        if len(steps) != 1:
            return None
        shared = states[0]["step"].clone()
        for s in states:
            s["step"] = shared
        self._lists = (params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [shared] * len(params))
        return self._lists

    def _unshare_steps(self) -> None:
        """Give every parameter its own step counter again (before PyTorch's step)."""
        if self._lists is None:
            return
        for p in self._lists[0]:
            state = self.state[p]  # type: ignore[attr-defined]
            state["step"] = state["step"].clone()
        self._lists = None

    def step(self, closure=None):  # noqa: D102
        lists = None
        if closure is None and getattr(self, "grad_scale", None) is None and getattr(self, "found_inf", None) is None:
            lists = self._shortcut_lists()
        grads = None
        if lists is not None:
            grads = [p.grad for p in lists[0]]
            if any(g is None or g.is_sparse for g in grads):
                grads = None
        if grads is None:
            self._unshare_steps()
            return super().step(closure)  # type: ignore[misc]
        params, exp_avgs, exp_avg_sqs, steps = lists
        group = self.param_groups[0]  # type: ignore[attr-defined]
        beta1, beta2 = group["betas"]
        # AdamW is Adam with decoupled weight decay; PyTorch records which in the group (AdamW sets it)
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        with torch.no_grad():
            steps[0].add_(1)
            kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=float(beta1),
                   beta2=float(beta2), weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                   grad_scale=None, found_inf=None)
        return None


class FusedAdam(_SharedStepFused, torch.optim.Adam):
    """``torch.optim.Adam(..., fused=True)`` with the per-step shortcut of the module docstring."""


class FusedAdamW(_SharedStepFused, torch.optim.AdamW):
    """``torch.optim.AdamW(..., fused=True)`` with the per-step shortcut of the module docstring."""


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether PyTorch's fused Adam takes these parameters (floating point, on a CPU or CUDA)."""
    return bool(params) and all(
        p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
        for p in params
    )


def make_adam(params, name: str = "adam", **kwargs: Any) -> torch.optim.Optimizer:
    """Adam (``name="adam"``) or AdamW (``"adamw"``): the fused classes above where PyTorch's fused
    kernel takes ``params``, else PyTorch's default implementation."""
    params = list(params)
    if fused_supported(params):
        return (FusedAdamW if name == "adamw" else FusedAdam)(params, **kwargs)
    return (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(params, **kwargs)
