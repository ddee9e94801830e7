"""Long rollouts of ESTAG on MD17-format trajectories (issue 16): the paper's recipe
(``estag_md17``) against the stability recipe (``estag_md17_stable``).

1. Generates one trajectory per molecule, if missing, with the documented command
   ``graphdyn simulate molecule --molecule M --out CACHE/M.npz --steps 30000 --temperature 500
   --seed K`` (30,001 frames of 0.5 fs at 500 K; K = the molecule's place in ethanol,
   malonaldehyde, aspirin, i.e. the seeds of one ``--molecule ethanol --molecule malonaldehyde
   --molecule aspirin --seed 0`` call).
2. Trains ESTAG per molecule, recipe and seed with ``graphdyn train`` (one thread each), every
   recipe on the same split: starts drawn by the paper's split from frames 10,100 .. 19,899
   (``skip=10100``), 500 / 200 / 200 train / val / test windows, so that every test window is
   followed by the 10,000 recorded frames a 1000-stride rollout (delta = 10) is compared with.
3. The run's own evaluation rolls out 1000 strides from every test start (stability
   threshold 0.5 A on the heavy-atom bonds; h(r) of the stable frames against the recorded
   frames, with its noise floor) and the one-stride test MSE; read from ``results.json``.
4. Writes ``OUT/study.json`` and prints a markdown table (means over seeds, per-seed values).

Finished runs (a ``results.json``) are skipped; an interrupted one is resumed.

    OMP_NUM_THREADS=1 python benchmarks/stability_study.py --cache /work/study/data \\
        --out /work/study/runs --seeds 1 2 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MOLECULES = ("ethanol", "malonaldehyde", "aspirin")
GRAPHDYN = [sys.executable, "-m", "graphdyn"]
#: The same data and evaluation options for every recipe (see the module docstring).
COMMON = ["data.options.skip=10100", "data.options.train_size=500", "data.options.val_size=200", "data.options.test_size=200",
          "eval.rollout_steps=1000", "eval.rollout_starts=200", "eval.stability_threshold=0.5", "training.threads=1"]


def generate(cache: Path, molecules: list[str]) -> None:
    """Simulate the trajectories that are missing from ``cache`` (documented command)."""
    cache.mkdir(parents=True, exist_ok=True)
    for mol in molecules:
        path = cache / f"{mol}.npz"
        if not path.exists():
            cmd = GRAPHDYN + ["simulate", "molecule", "--molecule", mol, "--out", str(path), "--steps", "30000",
                              "--temperature", "500", "--seed", str(MOLECULES.index(mol)), "--quiet"]
            print("$", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True)


def train(run: Path, recipe: str, data: Path, mol: str, seed: int, extra: list[str]) -> dict:
    """Train one run (or resume it) and return its ``results.json``."""
    results = run / "results.json"
    if not results.exists():
        if (run / "config.yaml").exists():
            cmd = GRAPHDYN + ["train", "--resume", str(run), "--quiet"]
        else:
            sets = [f"data.options.path={data}", f"data.options.molecule={mol}", f"name={mol}-{run.parent.name}-s{seed}", *COMMON, *extra]
            cmd = GRAPHDYN + ["train", recipe, "--seed", str(seed), "--run-dir", str(run), "--quiet"] + [a for s in sets for a in ("--set", s)]
        print("$", " ".join(cmd[2:]), flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        start = time.perf_counter()
        with open(run.parent / f"{run.name}.log", "a") as log:
            subprocess.run(cmd, check=False, env=env, stdout=log, stderr=subprocess.STDOUT)
        (run / "run_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    if not results.exists():
        return {"status": "failed"}
    wall = run / "run_seconds.txt"
    return {**json.loads(results.read_text()), "run_seconds": float(wall.read_text()) if wall.exists() else None}


def row(res: dict) -> dict:
    """The study's numbers of one run."""
    roll, test = res.get("rollout", {}), res.get("test") or {}
    st, hr = roll.get("stability") or {}, roll.get("h_r") or {}
    return {"test_mse": test.get("target_mse"), "stable": st.get("stable_to_end"), "starts": st.get("starts"),
            "stable_median": st.get("stable_strides_median"), "stable_min": st.get("stable_strides_min"),
            "hr_mae": hr.get("mae"), "noise_floor": hr.get("noise_floor"), "ratio": hr.get("mae_over_floor"),
            "truth_stable": roll.get("truth_stable_to_end"), "bond_std_ratio": (roll.get("bond_lengths") or {}).get("std_ratio_median"),
            "fit_seconds": (res.get("fit") or {}).get("fit_seconds"), "run_seconds": res.get("run_seconds")}


def fmt(values: list, spec: str) -> str:
    vals = [v for v in values if v is not None]
    return " / ".join(format(v, spec) for v in vals) if vals else "n/a"


def table(study: dict) -> str:
    lines = ["| molecule | recipe | one-stride test MSE (1e-5 A^2) | starts stable to 1000 strides | stable strides median / min | "
             "h(r) MAE | noise floor | MAE / floor |", "|" + " --- |" * 8]
    for mol, recipes in study.items():
        for recipe, seeds in recipes.items():
            rs = list(seeds.values())
            mse = [None if r["test_mse"] is None else 1e5 * r["test_mse"] for r in rs]
            stable = " / ".join(f"{r['stable']}/{r['starts']}" for r in rs)
            med = " / ".join(f"{r['stable_median']:g}, {r['stable_min']}" if r["stable_median"] is not None else "n/a" for r in rs)
            lines.append(f"| {mol} | {recipe} | {fmt(mse, '.2f')} | {stable} | {med} | {fmt([r['hr_mae'] for r in rs], '.3f')} | "
                         f"{fmt([r['noise_floor'] for r in rs], '.3f')} | {fmt([r['ratio'] for r in rs], '.1f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("study/data"), help="folder of the generated <molecule>.npz trajectories")
    ap.add_argument("--out", type=Path, default=Path("study/runs"), help="folder of the runs and study.json")
    ap.add_argument("--molecules", nargs="+", default=list(MOLECULES), choices=MOLECULES)
    ap.add_argument("--recipes", nargs="+", default=["estag_md17", "estag_md17_stable"],
                    help="built-in configs or YAML files; NAME+KEY=VALUE+KEY=VALUE adds overrides (a variant)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1])
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once (one thread each)")
    args = ap.parse_args()
    generate(args.cache, args.molecules)
    tasks = []
    for mol in args.molecules:
        for recipe in args.recipes:
            name, *extra = recipe.split("+")
            label = recipe.replace("+", "_").replace("=", "-").replace("/", "_")
            for seed in args.seeds:
                run = args.out / label / f"{mol}_s{seed}"
                run.parent.mkdir(parents=True, exist_ok=True)
                tasks.append((mol, recipe, seed, (run, name, (args.cache / f"{mol}.npz").resolve(), mol, seed, extra)))
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda t: train(*t[3]), tasks))
    study: dict = {}
    for (mol, recipe, seed, _), res in zip(tasks, done):
        study.setdefault(mol, {}).setdefault(recipe, {})[seed] = row(res)
    (args.out / "study.json").write_text(json.dumps(study, indent=2))
    print(table(study))


if __name__ == "__main__":
    main()
