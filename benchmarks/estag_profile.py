"""Where one ESTAG training step spends its time: ``torch.profiler`` over a few steps of a case of
``estag_step.py``, ops sorted by their own CPU time, in milliseconds per step.

Each native kernel shows as one custom op (``graphdyn::egnn_edges``, its backward
``graphdyn::egnn_edges_backward``, ...); everything else is PyTorch's ops. The profiler adds some
overhead of its own, so the total is a little above ``estag_step.py``'s step time.

Usage::

    python benchmarks/estag_profile.py --case aspirin --threads 2
    python benchmarks/estag_profile.py --case adk --threads 2 --steps 3 --rows 20
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import estag_step  # noqa: E402  (the cases live there)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="aspirin", choices=estag_step.CASES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="profiled steps, after --warmup")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rows", type=int, default=15, help="ops listed")
    args = ap.parse_args()

    from graphdyn.training.memory import keep_freed_memory
    from graphdyn.training.optim import make_adam

    keep_freed_memory()  # as graphdyn train and estag_step.py do
    torch.set_num_threads(args.threads)
    model, batch = estag_step.make_case(args.case)
    opt = make_adam(model.parameters(), lr=1e-5)  # as graphdyn's trainer

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(batch) - batch.target_x) ** 2)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops) / 1e3 / args.steps
    print(f"{args.case}, {args.threads} thread(s), {args.steps} steps: {total:.1f} ms of op time per step")
    print(f"{'op':<44} {'ms/step':>8} {'share':>6} {'calls/step':>10}")
    for e in ops[: args.rows]:
        ms = e.self_cpu_time_total / 1e3 / args.steps
        print(f"{e.key[:44]:<44} {ms:8.2f} {100 * ms / total:5.1f}% {e.count / args.steps:10.0f}")


if __name__ == "__main__":
    main()
