"""Throughput of the physics simulators, in particle-steps per second.

A particle-step is one particle advanced by one integrator step; ``R`` systems of ``N``
particles integrated for ``S`` steps are ``R * N * S`` particle-steps. Every case is timed
best-of-``repeats`` (the least disturbed run on a shared machine) for each torch thread
count asked for. Target: >= 1e6 particle-steps/s for springs on 2 cores.

    .venv/bin/python benchmarks/physics_throughput.py                 # all cases, 1 and 2 threads
    .venv/bin/python benchmarks/physics_throughput.py --threads 2 --steps 500
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from graphdyn.physics import ChargedSystem, Dynamics, GravitySystem, SpringSystem, generate


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}; {usable} usable cores of {os.cpu_count()}; {platform.system()} {platform.machine()}; "
            f"python {platform.python_version()}; torch {torch.__version__}; load average {load}")


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: caches, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cases(systems: int, steps: int):
    """(name, particles, steps, callable) for every case."""
    g = torch.Generator().manual_seed(0)
    chain = SpringSystem.build()  # the notebook's 3-mass chain
    x3 = torch.randn(systems, 3, 1, generator=g, dtype=torch.float64) * 0.5
    v3 = torch.randn(systems, 3, 1, generator=g, dtype=torch.float64) * 0.3
    sie = Dynamics(chain, 0.01, "semi_implicit_euler")
    vv = Dynamics(chain, 0.01, "velocity_verlet")
    yield "springs 3-chain 1-D, semi-implicit Euler (Dynamics.rollout)", systems * 3, steps, lambda: sie.rollout(x3, v3, steps)
    yield "springs 3-chain 1-D, velocity Verlet (Dynamics.rollout)", systems * 3, steps, lambda: vv.rollout(x3, v3, steps)
    yield ("springs 3-chain 1-D, generate() trajectory to numpy, energy + forces", systems * 3, steps,
           lambda: generate(chain, n_runs=systems, dt=0.01, mode="trajectory", frames=steps + 1, seed=0))
    big = SpringSystem.build(n_masses=30, dim=3, graph="random", edge_prob=0.1, graph_seed=0)
    n_big = max(1, systems // 10)
    xb = torch.randn(n_big, 30, 3, generator=g, dtype=torch.float64)
    dyn_big = Dynamics(big, 0.01, "velocity_verlet")
    yield f"springs 30-mass random graph 3-D ({big.n_springs} springs), Verlet, {n_big} systems", n_big * 30, steps, lambda: dyn_big.rollout(xb, xb, steps)
    for system in (ChargedSystem([1.0, -1.0, 1.0, -1.0, 1.0]), GravitySystem(5)):
        x5 = torch.randn(systems, 5, 3, generator=g, dtype=torch.float64)
        dyn = Dynamics(system, 0.001, "velocity_verlet")
        yield f"{system.kind} 5 particles 3-D, velocity Verlet", systems * 5, steps, (lambda d=dyn, x=x5: d.rollout(x, x * 0.5, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=10_000, help="systems integrated at once (default 10000)")
    parser.add_argument("--steps", type=int, default=100, help="integrator steps per timing (default 100)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per case; the best is reported (default 3)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"{args.systems} systems, {args.steps} steps per timing, float64, best of {args.repeats}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n-- torch threads: {threads}")
        for name, particles, steps, fn in cases(args.systems, args.steps):
            seconds = best_time(fn, args.repeats)
            rate = particles * steps / seconds
            print(f"{rate / 1e6:9.2f} M particle-steps/s  {seconds * 1e3 / steps:8.3f} ms/step  {name}")


if __name__ == "__main__":
    main()
