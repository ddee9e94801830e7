"""Time one training step (forward, backward, Adam) of every model at the paper's sizes, with peak memory.

The comparison of issue 15 trains every baseline of the ESTAG paper's tables; this script says what
one step of each costs on this machine. Cases (B = 100 graphs, T = 10 frames, float32, every model
with its own default parameters, as ``graphdyn train`` builds it):

* ``aspirin``: 13 heavy atoms, bonds + 2-hop pairs (60 directed edges), edge attributes
  ``[Z_i, Z_j, hop]`` as the md17 dataset gives them (graph and positions as in ``estag_step.py``).
* ``adk``: 213 residues, CA-CA contacts within 6 A (1128 directed edges), edge attribute the
  contact distance, the four backbone channels (N, CA, C, O; node attributes the four charges),
  as the paper's AdK table ran its models. Models that take single-channel data only (ST_TFN,
  ST_SE(3)TR, EqMotion: MD17 and motion in the paper) are not run on it.

Every (model, case) runs in a fresh subprocess with ``--threads`` torch threads. After
``--warmup`` steps, ``--steps`` steps are timed one by one; the median is reported. Memory is the
growth of the process's peak resident set size from just before the first step to the end: the
extra memory a training step needs.

Usage::

    python benchmarks/model_step.py                            # every registered model, both cases
    python benchmarks/model_step.py --models estag st_egnn --cases aspirin --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from estag_step import B, T, adk_graph, aspirin_graph, machine, time_steps

CASES = ("aspirin", "adk")


def make_case(name: str, case: str):
    """(model, batch, layout) of one model on one case, float32, seeded."""
    from graphdyn.data.windows import Batch
    from graphdyn.models.base import DataInfo
    from graphdyn.models.registry import build_model

    gen = torch.Generator().manual_seed(0)
    channels = None
    if case == "aspirin":
        pos, z, ei = aspirin_graph(gen)
        attr = z[:, None]
        adj = torch.zeros(len(z), len(z))
        adj[ei[0], ei[1]] = 1.0
        bonded = (torch.cdist(pos, pos) < 1.6)[ei[0], ei[1]]
        edge_attr = torch.stack([z[ei[0]], z[ei[1]], torch.where(bonded, 1.0, 2.0).double()], 1)
    else:
        pos, attr, ei = adk_graph()
        edge_attr = (pos[ei[0], 1] - pos[ei[1], 1]).norm(dim=-1, keepdim=True)
        channels = 4
    N = pos.shape[0]
    node = pos.shape[1:]
    x = pos + 0.1 * torch.randn(B, T, N, *node, generator=gen, dtype=torch.float64)
    target = pos + 0.1 * torch.randn(B, N, *node, generator=gen, dtype=torch.float64)
    info = DataInfo(dim=3, channels=channels, node_attr_dim=attr.shape[1], edge_attr_dim=edge_attr.shape[1], T=T,
                    n_nodes=N, has_velocities=False)
    torch.manual_seed(0)
    model = build_model(name, {}, info).float()
    batch = Batch(x=x.float(), target_x=target.float(), node_attr=attr.float().expand(B, N, attr.shape[1]),
                  edge_index=ei, edge_attr=edge_attr.float(), dt=1.0)
    return model, batch, "single" if channels is None else f"{channels} channels"


def run_one(name: str, case: str, threads: int, steps: int, warmup: int) -> dict:
    """Time ``steps`` training steps of one model on one case in this process."""
    from graphdyn.training.memory import keep_freed_memory
    from graphdyn.training.optim import make_adam

    keep_freed_memory()  # as graphdyn train does: later steps reuse the pages of the first
    torch.set_num_threads(threads)
    model, batch, layout = make_case(name, case)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_adam(params, lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(batch) - batch.target_x) ** 2)
        loss.backward()
        opt.step()

    timed = time_steps(step, warmup, steps)
    return {
        "model": name,
        "case": case,
        "layout": layout,
        "threads": threads,
        "nodes": int(batch.x.shape[2]),
        "edges": int(batch.edge_index.shape[1]),
        "parameters": sum(p.numel() for p in params),
        "steps": steps,
        **timed,
        "load_before": os.getloadavg()[0],
    }


def _needs_velocities(name: str, model_class) -> bool:
    try:
        return model_class(name).needs_velocities
    except ModuleNotFoundError:  # listed, not written: its run reports the failure
        return False


def main() -> None:
    from graphdyn.models.registry import available_models, model_class

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None,
                    help="model names (default: every registered model that reads positions only, i.e. all but the notebook's gnn)")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10 aspirin, 3 AdK)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, case = args.child
        steps = args.steps or (10 if case == "aspirin" else 3)
        print(json.dumps(run_one(name, case, args.threads, steps, args.warmup)))
        return
    models = args.models or [m for m in available_models(variants=False) if not _needs_velocities(m, model_class)]
    info = machine()
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, Python {info['python']}")
    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(f"B={B} T={T} float32, {args.threads} thread(s); one step = forward + backward + Adam; memory = ru_maxrss growth")
    results, failed = [], []
    for case in args.cases:
        for name in models:
            if ("multi" if case == "adk" else "single") not in model_class(name).layouts:
                continue  # AdK: the paper's multi-channel table; aspirin: single-channel models
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, case, "--threads", str(args.threads),
                   "--warmup", str(args.warmup)] + (["--steps", str(args.steps)] if args.steps else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{case:8s} {name:12s} failed: {last}", flush=True)
                failed.append({"model": name, "case": case, "error": last})
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{case:8s} {name:12s} {r['layout']:10s} N={r['nodes']:4d} E={r['edges']:5d} params={r['parameters']:7d}"
                  f"  median {r['median_ms']:9.1f} ms  min {r['min_ms']:9.1f} ms  peak memory +{r['peak_rss_growth_mib']:.0f} MiB",
                  flush=True)
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, {"machine": info, "command": sys.argv, "B": B, "T": T, "threads": args.threads,
                               "results": results, "failed": failed})
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
