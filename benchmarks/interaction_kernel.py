"""The interaction layer (the notebook's GNN layer) with and without its native kernel.

Times one forward pass and one forward + backward pass of ``InteractionLayer`` on a batch of
3-mass spring chains (the notebook's graph: 4 directed edges, node features ``[x, v]``, hidden 32,
one output), float32, under the native backend (the C kernel as a custom op) and the torch
backend (the op's plain-autograd reference), at 1 and 2 threads. The inputs need no gradient (as in training: the
weights do). Median of ``--repeats`` timings after a warm-up.

Usage::

    python benchmarks/interaction_kernel.py
    python benchmarks/interaction_kernel.py --batch 20000 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from graphdyn import native
from graphdyn.nn.message_passing import InteractionLayer

EDGES = torch.tensor([[1, 0, 2, 1], [0, 1, 1, 2]])  # receiver, sender: the 3-mass chain both ways


def timed(fn, repeats: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    if not native.available():
        raise SystemExit("native kernels unavailable (no C compiler, or GRAPHDYN_NATIVE=0): nothing to compare")
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}")
    print(f"InteractionLayer(2, 1, hidden={args.hidden}) on {args.batch} graphs of 3 nodes / 4 edges, float32; "
          f"median of {args.repeats}, load {os.getloadavg()[0]:.1f}")
    torch.manual_seed(0)
    layer = InteractionLayer(2, 1, hidden=args.hidden)
    h = torch.randn(args.batch, 3, 2)
    g = torch.randn(args.batch, 3, 1)
    for threads in args.threads:
        torch.set_num_threads(threads)
        row = {}
        for backend in ("native", "torch"):
            layer.backend = backend
            fwd = timed(lambda: layer(h, EDGES), args.repeats)
            both = timed(lambda: torch.autograd.backward(layer(h, EDGES), g), args.repeats)
            row[backend] = (fwd, both)
        (nf, nb), (pf, pb) = row["native"], row["torch"]
        print(f"threads={threads}: forward {nf:.3f} ms native / {pf:.3f} ms PyTorch ({pf / nf:.1f}x); "
              f"forward+backward {nb:.3f} ms / {pb:.3f} ms ({pb / nb:.1f}x)")


if __name__ == "__main__":
    main()
