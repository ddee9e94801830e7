"""What a training step costs beyond the model: graphdyn's trainer against a bare PyTorch loop.

Both train the same simulator (graphdyn's version of the notebook's spring-chain model, as in
``spring_training.py``) with the same optimizer (``make_adam``, as the trainer) on the same batches from ``WindowLoader``, one
full-batch step per epoch (as ``spring_training.py``'s throughput fit):

* **graphdyn**: ``DynamicsModule`` on PyTorch Lightning, the fit ``spring_training.py`` times
  (its wall clock from the start of training to its end, Lightning's per-step and per-epoch
  bookkeeping included);
* **bare loop**: ``for batch in loader: loss = sim.loss(batch); opt.zero_grad();
  loss.backward(); opt.step()``, nothing else.

At batch size 1 a step is nearly all fixed cost (the model's arithmetic is a few microseconds);
the difference between the two columns is what Lightning's loop and ``DynamicsModule``'s hooks
add to every step. Each round runs both back to back (graphdyn first in odd rounds, the bare
loop first in even ones) for every batch size, in one process, so that both see the same spells
of this shared machine; medians and ranges over the rounds are reported.

Usage (results in docs/benchmarks.md)::

    python benchmarks/trainer_overhead.py --target dv
    python benchmarks/trainer_overhead.py --target acceleration --batch-sizes 1 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spring_training import make_simulator, run_graphdyn  # noqa: E402  (same model, same fit)

from graphdyn.data.registry import Window, build_dataset  # noqa: E402
from graphdyn.data.windows import WindowLoader  # noqa: E402
from graphdyn.training.optim import make_adam  # noqa: E402


def bare_loop(splits, target: str, batch_size: int, lr: float, epochs: int, seed: int) -> float:
    """Seconds per step of the plain PyTorch loop on the same simulator, optimizer and batches."""
    torch.manual_seed(seed)
    sim = make_simulator(splits, target)
    opt = make_adam(sim.parameters(), lr=lr)  # the trainer's optimizer (DynamicsModule.configure_optimizers)
    loader = WindowLoader(splits.train, batch_size, shuffle=True, seed=seed)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            loss = sim.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["acceleration", "dv"], default="dv")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                    help="full-batch sizes (training snapshots); default 1 and the notebook's size (1000 dv, 2000 acceleration)")
    ap.add_argument("--epochs", type=int, default=200, help="steps per timed fit (one per epoch)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.rounds < 1 or args.epochs < 1:
        ap.error("--rounds and --epochs must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.batch_sizes or [1, 2000 if args.target == "acceleration" else 1000]
    if min(sizes) < 1:
        ap.error("--batch-sizes must be at least 1")
    splits = {n: build_dataset("springs", {"n_train": n, "n_val": 20, "n_test": 20}, Window(), args.seed) for n in sizes}
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; target {args.target}, "
          f"full-batch steps of {sizes} samples, {args.epochs} steps per fit, {args.rounds} rounds")

    def ms_per_step(which: str, n: int, epochs: int) -> float:
        if which == "graphdyn":
            fit = run_graphdyn(splits[n], args.target, n, args.lr, epochs, args.seed, "none")
            return fit["seconds"] / fit["steps"] * 1e3
        return bare_loop(splits[n], args.target, n, args.lr, epochs, args.seed) * 1e3

    for n in sizes:  # untimed: first calls, the thread pool, the native kernels
        for which in ("graphdyn", "bare"):
            ms_per_step(which, n, 20)
    times: dict[int, dict[str, list[float]]] = {n: {"graphdyn": [], "bare": []} for n in sizes}
    for r in range(args.rounds):
        for n in sizes:
            for which in ("graphdyn", "bare") if r % 2 == 0 else ("bare", "graphdyn"):  # neither always goes first
                times[n][which].append(ms_per_step(which, n, args.epochs))
        print(f"  round {r + 1}: " + ", ".join(f"batch {n}: {times[n]['graphdyn'][-1]:.3f} / {times[n]['bare'][-1]:.3f} ms"
                                                 for n in sizes), flush=True)

    result = {"target": args.target, "threads": torch.get_num_threads(), "epochs": args.epochs, "rounds": args.rounds, "ms_per_step": {}}
    print(f"\n{'batch':>6} {'graphdyn ms/step':>24} {'bare loop ms/step':>24} {'difference (median)':>20}")
    for n in sizes:
        g, b = times[n]["graphdyn"], times[n]["bare"]
        diffs = [x - y for x, y in zip(g, b)]  # per round: both ran back to back
        result["ms_per_step"][n] = {"graphdyn": g, "bare": b, "graphdyn_median": statistics.median(g),
                                    "bare_median": statistics.median(b), "difference_median": statistics.median(diffs)}
        print(f"{n:>6} {statistics.median(g):>9.3f} ({min(g):.3f}-{max(g):.3f}) {statistics.median(b):>9.3f} "
              f"({min(b):.3f}-{max(b):.3f}) {statistics.median(diffs):>20.3f}")
    print(json.dumps(result))
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, result)


if __name__ == "__main__":
    main()
