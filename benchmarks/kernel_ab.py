"""Paired timing of ESTAG's native kernels from two builds of the C sources, in one process.

This machine's speed drifts by 1.3-2x within minutes, so two separate benchmark runs cannot
resolve a kernel change of a few per cent. Here one training step of a case of ``estag_step.py``
records the inputs of every native op; then each op's forward and backward run with library A's
kernels and with library B's in turn, on those same inputs, the order flipping every round, and
the median of the paired ratios B / A is reported (with ``--check``, also whether B's outputs and
gradients equal A's bit for bit). Both libraries must come from sources with the same C function
signatures: the Python wrappers are this checkout's.

Build each library by loading graphdyn's kernels with ``GRAPHDYN_NATIVE_CACHE`` set to a folder of
its own, once per source version::

    GRAPHDYN_NATIVE_CACHE=/tmp/lib_a .venv/bin/python -c "import graphdyn.native as n; n.load()"
    # ... change the C sources ...
    GRAPHDYN_NATIVE_CACHE=/tmp/lib_b .venv/bin/python -c "import graphdyn.native as n; n.load()"
    .venv/bin/python benchmarks/kernel_ab.py /tmp/lib_a /tmp/lib_b --ops attention node_update --check
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import estag_step  # noqa: E402  (the cases live there)

from graphdyn import native, ops  # noqa: E402


def load_library(path: str) -> ctypes.CDLL:
    """The library ``path``, or the newest graphdyn library built in the folder ``path``."""
    if Path(path).is_file():
        return ctypes.CDLL(path)
    libs = sorted(Path(path).glob("graphdyn-*.so"), key=lambda p: p.stat().st_mtime)
    if not libs:
        sys.exit(f"{path}: no graphdyn-*.so (build one with GRAPHDYN_NATIVE_CACHE={path})")
    return ctypes.CDLL(str(libs[-1]))


def capture_inputs(case: str) -> dict[str, tuple]:
    """(custom op, its arguments) of each op of :data:`graphdyn.ops.OPS` at its first native call
    in one training step of ``case`` (ops that ran natively only)."""
    captured: dict[str, tuple] = {}
    originals = {name: module.native_call for name, module in ops.OPS.items()}
    for name, module in ops.OPS.items():

        def recording(*args, name=name, real=module.native_call, **kwargs):
            op, op_args = real(*args, **kwargs)
            captured.setdefault(name, (op, tuple(
                a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in op_args)))
            return op, op_args

        module.native_call = recording
    try:
        model, batch = estag_step.make_case(case)
        ops.configure(model, "native")
        torch.mean((model(batch) - batch.target_x) ** 2).backward()
    finally:
        for name, module in ops.OPS.items():
            module.native_call = originals[name]
    return captured


def run(op, args, grads):
    """(forward ms, backward ms, outputs and input gradients) of one call of the custom op."""
    t0 = time.perf_counter()
    out = op(*args)
    t1 = time.perf_counter()
    outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]
    inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    g = torch.autograd.grad(outs, inputs, grads(outs), allow_unused=True)
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, [o.detach() for o in outs] + list(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib_a", help="library A: a graphdyn-*.so, or the folder of its build (GRAPHDYN_NATIVE_CACHE)")
    ap.add_argument("lib_b", help="library B, the same way")
    ap.add_argument("--case", default="aspirin", choices=estag_step.CASES)
    ap.add_argument("--ops", nargs="+", default=None, choices=list(ops.OPS), help="default: every op that ran natively")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=40, help="calls of each library per op")
    ap.add_argument("--check", action="store_true", help="also compare B's outputs and gradients with A's")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()

    from graphdyn.training.memory import keep_freed_memory

    keep_freed_memory()  # as graphdyn train and estag_step.py do
    torch.set_num_threads(args.threads)
    libs = {"A": load_library(args.lib_a), "B": load_library(args.lib_b)}
    current = {"lib": "A"}
    native.kernel = lambda name, dtype: getattr(libs[current["lib"]], f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")
    captured = capture_inputs(args.case)
    print(f"{args.case}, {args.threads} thread(s), {args.rounds} paired rounds; A = {args.lib_a}, B = {args.lib_b}")
    report = {"case": args.case, "threads": args.threads, "rounds": args.rounds, "lib_a": args.lib_a, "lib_b": args.lib_b,
              "ops": {}}
    for name in args.ops or list(captured):
        if name not in captured:
            sys.exit(f"kernel_ab.py: {name} made no native call in a {args.case} step")
        op, call_args = captured[name]
        gen = torch.Generator().manual_seed(0)
        fixed: list[torch.Tensor] = []

        def grads(outs):  # the same upstream gradients for every call
            if not fixed:
                fixed.extend(torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outs)
            return fixed

        times = {(k, part): [] for k in libs for part in ("fwd", "bwd")}
        results = {}
        for r in range(args.rounds + 2):  # the first two rounds warm up
            for k in ("A", "B") if r % 2 else ("B", "A"):
                current["lib"] = k
                fwd, bwd, results[k] = run(op, call_args, grads)
                if r >= 2:
                    times[(k, "fwd")].append(fwd)
                    times[(k, "bwd")].append(bwd)
        entry = report["ops"][name] = {}
        for part in ("fwd", "bwd"):
            a, b = times[("A", part)], times[("B", part)]
            ratio = statistics.median(y / x for x, y in zip(a, b))
            entry[part] = {"a_ms": statistics.median(a), "b_ms": statistics.median(b), "ratio": ratio}
            print(f"{name:12s} {part}: A {statistics.median(a):8.3f} ms  B {statistics.median(b):8.3f} ms  "
                  f"B/A median of paired ratios {ratio:.3f}")
        if args.check:
            same = all(x is None and y is None or torch.equal(x, y) for x, y in zip(results["A"], results["B"]))
            entry["bit_identical"] = same
            print(f"{name:12s} outputs and gradients bit-identical: {same}")
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
