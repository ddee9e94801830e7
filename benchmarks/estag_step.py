"""Time one ESTAG training step (forward, backward, Adam) at the paper's sizes, with peak memory.

Cases (B = 100 graphs, T = 10 frames, H = 16, L = 2, float32, the authors' defaults otherwise):

* ``aspirin``: 13 heavy atoms; edges are aspirin's real heavy-atom bonds (RDKit from SMILES)
  plus the 2-hop pairs, both directions (the MD17 graph of the spec: 60 directed edges, a
  little more than the issue's "about 50"); positions from an RDKit conformer plus per-frame noise.
* ``adk``: 213 residues, single-channel (CA only); edges are CA-CA contacts within 6 A at
  frame 0 of the AdK trajectory shipped with MDAnalysisTests (``adk.psf`` + ``adk_dims.dcd``),
  both directions; positions frame 0 plus noise.
* ``adk4``: the same graph, four backbone channels (N, CA, C, O): the multi-channel model.

``--backend`` (``auto``, ``torch`` or ``native``) picks the ops' implementation for the model
(:func:`graphdyn.ops.configure`); each result records the backend and how many calls of each op
ran natively and how many ran the reference in the timed steps.

Every (case, threads) pair runs in a fresh subprocess (``torch.set_num_threads``). After
``--warmup`` steps, ``--steps`` steps are timed one by one (``time.perf_counter``); the median and
the minimum are reported. Peak memory is the growth of the process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from just before the first step (model, data
and optimiser built) to the end of the timed steps: the extra memory a training step needs.
Like ``graphdyn train``, each child process first calls
:func:`graphdyn.training.memory.keep_freed_memory` (freed tensors' pages stay in the process, so
steps after the first do not page-fault on fresh memory); ``GRAPHDYN_KEEP_MEMORY=0`` leaves glibc's
malloc as it is.

Usage::

    python benchmarks/estag_step.py                       # all cases, 1 and 2 threads
    python benchmarks/estag_step.py --cases aspirin --threads 2 --json out.json
    python benchmarks/estag_step.py --backend torch          # the ops' plain-autograd references
    python benchmarks/estag_step.py --cases aspirin adk --threads 2 --repeats 5   # 5 processes each, in rounds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

B, T, H, L = 100, 10, 16, 2
CASES = ("aspirin", "adk", "adk4")
ASPIRIN_SMILES = "CC(=O)OC1=CC=CC=C1C(=O)O"


def aspirin_graph(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positions [N, 3], atomic numbers [N], edge_index [2, E]) of aspirin's heavy atoms: bonds + 2-hop."""
    try:
        from rdkit import Chem
        from rdkit.Chem import AllChem
    except ImportError:
        sys.exit("estag_step.py: the aspirin case needs RDKit (the md extra): run `make bench`, or pip install -e '.[test,md]'")

    mol = Chem.AddHs(Chem.MolFromSmiles(ASPIRIN_SMILES))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64)[heavy]
    z = torch.tensor([mol.GetAtomWithIdx(k).GetAtomicNum() for k in heavy], dtype=torch.float64)
    n = len(heavy)
    adj = torch.zeros(n, n)
    where = {k: r for r, k in enumerate(heavy)}
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in where and b in where:
            adj[where[a], where[b]] = adj[where[b], where[a]] = 1
    two = ((adj @ adj) > 0).float() * (1 - adj) * (1 - torch.eye(n))
    ei = torch.nonzero((adj + two) > 0).T.contiguous()
    return pos, z, ei


def adk_graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(backbone positions [213, 4, 3], charges [213, 4], CA-CA 6 A contacts [2, E]) from MDAnalysisTests."""
    import warnings

    import MDAnalysis as mda

    try:
        from MDAnalysisTests.datafiles import DCD, PSF
    except ImportError:
        sys.exit("estag_step.py: the AdK cases read MDAnalysisTests' AdK trajectory (the test extra): run `make bench`, or pip install -e '.[test,md]'")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
    pos, q = [], []
    for res in u.select_atoms("protein").residues:
        bb = [res.atoms.select_atoms(f"name {n}") for n in ("N", "CA", "C", "O")]
        if all(len(a) == 1 for a in bb):
            pos.append([a.positions[0] for a in bb])
            q.append([float(a.charges[0]) for a in bb])
    pos_t = torch.from_numpy(np.array(pos, dtype=np.float64))
    ca = pos_t[:, 1]
    close = (torch.cdist(ca, ca) < 6.0) & ~torch.eye(len(ca), dtype=torch.bool)
    return pos_t, torch.tensor(q, dtype=torch.float64), torch.nonzero(close).T.contiguous()


def make_case(case: str):
    """(model, batch) for one case, float32, seeded."""
    from graphdyn.data.windows import Batch
    from graphdyn.models.base import DataInfo
    from graphdyn.models.registry import build_model

    gen = torch.Generator().manual_seed(0)
    if case == "aspirin":
        pos, z, ei = aspirin_graph(gen)
        attr = z[:, None]
    else:
        pos, attr, ei = adk_graph()
        if case == "adk":
            pos, attr = pos[:, 1], attr[:, 1:2]
    N = pos.shape[0]
    node = pos.shape[1:]
    x = pos + 0.1 * torch.randn(B, T, N, *node, generator=gen, dtype=torch.float64)
    target = pos + 0.1 * torch.randn(B, N, *node, generator=gen, dtype=torch.float64)
    channels = 4 if case == "adk4" else None
    info = DataInfo(dim=3, channels=channels, node_attr_dim=attr.shape[1], edge_attr_dim=0, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(0)
    model = build_model("estag", {"hidden": H, "layers": L}, info).float()
    batch = Batch(
        x=x.float(),
        target_x=target.float(),
        node_attr=attr.float().expand(B, N, attr.shape[1]),
        edge_index=ei,
        dt=1.0,
    )
    return model, batch


def time_steps(step, warmup: int, steps: int) -> dict:
    """Run ``step()`` ``warmup`` times, then ``steps`` times timed one by one.

    Returns ``median_ms`` and ``min_ms`` of the timed calls and ``peak_rss_growth_mib``, the
    growth of the process's peak resident set size from just before the first call to the end.
    Shared by this script and ``model_step.py``.
    """
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "median_ms": 1e3 * statistics.median(times),
        "min_ms": 1e3 * min(times),
        "peak_rss_growth_mib": (rss1 - rss0) / 1024.0,  # ru_maxrss is in KiB on Linux
    }


def run_one(case: str, threads: int, steps: int, warmup: int, backend: str = "auto") -> dict:
    """Time ``steps`` training steps of one case in this process, the ops run by ``backend``."""
    from graphdyn import ops
    from graphdyn.training.memory import keep_freed_memory
    from graphdyn.training.optim import make_adam

    keep_freed_memory()  # as graphdyn train does
    torch.set_num_threads(threads)
    model, batch = make_case(case)
    resolved = ops.configure(model, backend)
    lr = 5e-5 if case.startswith("adk") else 5e-3
    opt = make_adam(model.parameters(), lr=lr, weight_decay=1e-12)  # as graphdyn's trainer: torch.optim.Adam(fused=True)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(batch) - batch.target_x) ** 2)
        loss.backward()
        opt.step()
        return float(loss)

    load0 = os.getloadavg()[0]
    ops.reset_usage()
    timed = time_steps(step, warmup, steps)
    return {
        "case": case,
        "threads": threads,
        "backend": resolved,
        "ops": ops.usage(),  # calls per op and implementation (warmup and timed steps)
        "nodes": int(batch.x.shape[2]),
        "edges": int(batch.edge_index.shape[1]),
        "steps": steps,
        **timed,
        # 1-minute load average before and after: other processes on the machine skew timings
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 30 aspirin, 7 AdK)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "native"],
                    help="the ops' implementation (graphdyn.ops.configure): torch = the plain-autograd references")
    ap.add_argument("--repeats", type=int, default=1,
                    help="fresh processes per (case, threads), in rounds over all of them; the summary gives the median of their medians")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case = args.child[0]
        steps = args.steps or (30 if case == "aspirin" else 7)
        print(json.dumps(run_one(case, int(args.child[1]), steps, args.warmup, args.backend)))
        return
    info = machine()
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, Python {info['python']}")
    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(f"B={B} T={T} H={H} L={L} float32, backend {args.backend}; one step = forward + backward + Adam;"
          " memory = ru_maxrss growth")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    results = []
    # rounds over every (case, threads): this machine's speed drifts over minutes, so repeats of
    # one case are spread over the whole run rather than taken back to back
    runs = [(case, threads) for _ in range(args.repeats) for case in args.cases for threads in args.threads]
    for case, threads in runs:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", case, str(threads), "--warmup", str(args.warmup)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        cmd += ["--backend", args.backend]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:  # the child's own message (a missing extra: one line) stays whole
            sys.stderr.write(proc.stderr)
            sys.exit(f"estag_step.py: the {case} run with {threads} thread(s) failed (exit code {proc.returncode})")
        out = proc.stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(f"{case:8s} N={r['nodes']:4d} E={r['edges']:5d} threads={threads}: median {r['median_ms']:9.1f} ms"
              f"  min {r['min_ms']:9.1f} ms  peak memory +{r['peak_rss_growth_mib']:.0f} MiB"
              f"  (load {r['load_before']:.1f} -> {r['load_after']:.1f})"
              + "".join(f"; {op} ran the reference ({c['torch']} calls)" for op, c in r["ops"].items() if c["torch"]), flush=True)
    summary = []
    if args.repeats > 1:
        print(f"over {args.repeats} processes each (median of the per-process medians; their range; the fastest step):")
        for case in args.cases:
            for threads in args.threads:
                mine = [r for r in results if r["case"] == case and r["threads"] == threads]
                meds = [r["median_ms"] for r in mine]
                row = {"case": case, "threads": threads, "median_of_medians_ms": statistics.median(meds),
                       "medians_range_ms": [min(meds), max(meds)], "min_ms": min(r["min_ms"] for r in mine)}
                summary.append(row)
                print(f"{case:8s} threads={threads}: median {row['median_of_medians_ms']:9.1f} ms  (medians {min(meds):.1f}-"
                      f"{max(meds):.1f} ms)  fastest step {row['min_ms']:.1f} ms")
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, {"machine": info, "command": sys.argv, "B": B, "T": T, "H": H, "L": L, "backend": args.backend,
                               "memory_method": "ru_maxrss growth from before the first step to after the last, fresh process per case",
                               "repeats": args.repeats, "results": results, "summary": summary})


if __name__ == "__main__":
    main()
