"""One optimizer step alone: PyTorch's fused Adam against graphdyn's FusedAdam (training/optim.py).

The parameters of a model (ESTAG at the paper's size, 58 tensors; the spring benchmark's dv
model, 8 tensors) get fixed random gradients once; then each optimizer takes ``--steps`` steps,
timed together, five times, alternating the two optimizers; the best of the five is reported
in microseconds per step. Both call the same fused kernel on the same tensors (their results are
bit for bit the same, ``tests/training/test_optim.py``); the difference is the bookkeeping around it.

Usage::

    python benchmarks/adam_step.py
    python benchmarks/adam_step.py --models estag --steps 200 --json out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graphdyn.training.optim import FusedAdam  # noqa: E402


def model_parameters(name: str) -> list[torch.Tensor]:
    """The trainable parameters of one of the benchmark models."""
    if name == "estag":
        import estag_step

        model, _ = estag_step.make_case("aspirin")
        return [p for p in model.parameters() if p.requires_grad]
    from spring_training import make_simulator

    from graphdyn.data.registry import Window, build_dataset

    splits = build_dataset("springs", {"n_train": 20, "n_val": 5, "n_test": 5}, Window(), 0)
    return [p for p in make_simulator(splits, "dv", True).parameters() if p.requires_grad]


def time_optimizers(params: list[torch.Tensor], steps: int) -> dict[str, float]:
    """Best-of-five microseconds per step of each optimizer, alternating."""
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    opts = {"torch_fused_adam": torch.optim.Adam(params, lr=1e-6, fused=True), "graphdyn_fused_adam": FusedAdam(params, lr=1e-6)}
    for opt in opts.values():  # first steps create the state
        for _ in range(3):
            opt.step()
    best = {name: float("inf") for name in opts}
    for _ in range(5):
        for name, opt in opts.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            best[name] = min(best[name], (time.perf_counter() - t0) / steps * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["estag", "spring_dv"], choices=["estag", "spring_dv"])
    ap.add_argument("--steps", type=int, default=1000, help="steps per timing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.models:
        params = model_parameters(name)
        us = time_optimizers(params, args.steps)
        results[name] = {"tensors": len(params), "numbers": sum(p.numel() for p in params), "us_per_step": us}
        print(f"{name:10s} {len(params):3d} tensors: torch.optim.Adam(fused=True) {us['torch_fused_adam']:7.1f} us, "
              f"FusedAdam {us['graphdyn_fused_adam']:7.1f} us per step")
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, {"threads": args.threads, "steps": args.steps, "results": results})


if __name__ == "__main__":
    main()
