"""``graphdyn demo``: end-to-end demonstrations on data that needs no download.

``graphdyn demo`` (or ``demo notebook``) is the teaching notebook: the two GNNs trained on
random spring-chain snapshots (3 masses, k = m = 1, dt = 0.01), one predicting the velocity
change ``dv``, one the acceleration, both rolled out for 500 steps from test states against
the true physics. Writes both runs, the notebook's comparison figure, the error against step
and a short report into one folder.

``graphdyn demo estag`` trains ESTAG, an EGNN on the last observed frame and the
copy-last-frame baseline on charged particles (Coulomb, 3-D) generated on the spot, and
compares their test MSE under one harness (same data, split, target and budget).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer


def demo_command(
    which: str = typer.Argument("notebook", help="notebook (the spring-chain notebook) or estag (ESTAG vs baselines on charged particles)."),
    output_dir: Path = typer.Option(Path("runs"), help="Parent folder of the demo folder."),
    steps: int = typer.Option(500, help="Rollout horizon."),
    epochs: int = typer.Option(None, help="Override the number of training epochs of both models."),
    seed: int = typer.Option(0, help="Seed of data and training."),
    quiet: bool = typer.Option(False, help="Nothing per epoch (no progress bars, no epoch lines)."),
) -> None:
    """Reproduce the spring-chain notebook (default), or compare ESTAG with baselines (estag)."""
    if which == "estag":
        return estag_demo(output_dir, epochs, seed, quiet)
    if which != "notebook":
        from graphdyn.errors import GraphdynError

        raise GraphdynError(f"unknown demo {which!r}; choose notebook or estag", field="which")
    import numpy as np

    from graphdyn.io import write_json, write_text
    from graphdyn.training.config import builtin_config_path, load_config
    from graphdyn.training.run import train
    from graphdyn.viz import plots

    t0 = time.perf_counter()
    demo_dir = output_dir / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    demo_dir.mkdir(parents=True, exist_ok=False)
    results = {}
    for key, cfg_name in (("dv", "notebook_dv"), ("acceleration", "notebook_acc")):
        overrides = [f"output_dir={demo_dir}", f"seed={seed}", f"eval.rollout_steps={steps}"]
        if epochs is not None:
            overrides.append(f"training.epochs={epochs}")
        cfg = load_config(builtin_config_path(cfg_name), overrides)
        typer.echo(f"training the {key} model ({cfg.data.options.get('n_train')} snapshots, {cfg.training.epochs} epochs) ...")
        results[key] = train(cfg, quiet=quiet)
        _stop_if_diverged(results[key], f"the {key} model")

    panels, curves, rows = [], {}, []
    for key, res in results.items():
        roll = res.rollout
        start = roll.start[0:1].numpy()
        panels.append((f"GNN predicting {key}: {roll.steps} steps vs true physics",
                       np.concatenate([start, roll.true[0].numpy()]), np.concatenate([start, roll.pred[0].numpy()])))
        curves[f"{key} model"] = roll.mse
        test = res.metrics["test"]
        summary = roll.summary()
        rows.append({
            "model": key,
            "test_mse_target": test["target_mse"],
            "test_mse_position": test["pos_mse"],
            "rollout_final_mse_mean": summary["final_mse_mean"],
            "rollout_final_mse_sample0": float(roll.mse[0, -1]) if np.isfinite(roll.mse[0, -1]) else None,
            "energy_drift_pred": summary.get("energy_drift_pred"),
            "run_dir": str(res.run_dir),
            "fit_seconds": res.metrics["fit"]["fit_seconds"],
        })
    plots.rollout_comparison(panels, demo_dir / "notebook_comparison.png")
    plots.error_vs_step(curves, demo_dir / "error_vs_step.png", title=f"position MSE against step ({len(roll.mse)} test starts)")
    elapsed = time.perf_counter() - t0
    write_json(demo_dir / "results.json", {"models": rows, "seconds": elapsed, "steps": steps, "seed": seed})
    lines = [
        "# graphdyn demo: the spring-chain notebook",
        "",
        "3 masses, 1-D chain, k = 1, m = 1, dt = 0.01, random snapshots (positions ~ N(0, 0.5^2), velocities ~ N(0, 0.3^2)).",
        "",
        f"| model | test MSE (its target) | test MSE (next position) | {steps}-step rollout MSE, mean over starts | same, test sample 0 | energy drift |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        drift = "n/a" if r["energy_drift_pred"] is None else f"{r['energy_drift_pred']:.3g}"
        lines.append(f"| {r['model']} | {r['test_mse_target']:.3g} | {r['test_mse_position']:.3g} | {_num(r['rollout_final_mse_mean'], '.3g')} | {_num(r['rollout_final_mse_sample0'], '.3g')} | {drift} |")
    lines += ["", "Figures: `notebook_comparison.png` (the notebook's two plots), `error_vs_step.png`; each run folder has its loss curve.",
              f"Total time {elapsed:.0f} s. Command: `graphdyn demo --seed {seed}`.", ""]
    write_text(demo_dir / "report.md", "\n".join(lines))

    typer.echo("")
    typer.echo(f"{'model':<14}{'test MSE (target)':>20}{'test MSE (position)':>22}{f'{steps}-step rollout MSE':>24}")
    for r in rows:
        typer.echo(f"{r['model']:<14}{r['test_mse_target']:>20.3g}{r['test_mse_position']:>22.3g}{_num(r['rollout_final_mse_mean'], '.3g'):>24}")
    typer.echo(f"\nwrote {demo_dir} (report.md, notebook_comparison.png, error_vs_step.png) in {elapsed:.0f} s")


def _stop_if_diverged(result, what: str) -> None:
    """A diverged run ends the demo with its one line (exit code 3)."""
    if result.status == "diverged":
        from graphdyn.training.run import TrainingDiverged

        raise TrainingDiverged(f"{what}: {result.message} (run folder {result.run_dir})")


ESTAG_MODELS = (
    ("copy_last", "copy_last", []),
    ("egnn_last_frame", "egnn", ["model.params.frame=-1"]),
    ("estag", "estag", []),
)


def estag_demo(output_dir: Path, epochs: int | None, seed: int, quiet: bool) -> None:
    """ESTAG vs EGNN on the last frame vs copying the last frame, on charged particles."""
    from graphdyn.io import write_json, write_text
    from graphdyn.training.config import builtin_config_path, load_config
    from graphdyn.training.run import train
    from graphdyn.viz import plots

    t0 = time.perf_counter()
    demo_dir = output_dir / f"demo-estag-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    demo_dir.mkdir(parents=True, exist_ok=False)
    rows, curves = [], {}
    for label, model, extra in ESTAG_MODELS:
        overrides = [f"output_dir={demo_dir}", f"seed={seed}", f"name={label}", f"model.name={model}", *extra]
        if epochs is not None:
            overrides.append(f"training.epochs={epochs}")
        cfg = load_config(builtin_config_path("charged_estag"), overrides)
        typer.echo(f"training {label} ...")
        res = train(cfg, quiet=quiet)
        _stop_if_diverged(res, label)
        roll = res.metrics.get("rollout", {})
        rows.append({"model": label, "test_mse": res.metrics["test"]["pos_mse"], "rollout_final_mse": roll.get("final_mse_mean"),
                     "rollout_steps": roll.get("steps"), "fit_seconds": res.metrics["fit"]["fit_seconds"],
                     "parameters": sum(p.numel() for p in res.simulator.parameters()), "run_dir": str(res.run_dir)})
        if res.rollout is not None:
            curves[label] = res.rollout.mse
    if curves:
        plots.error_vs_step(curves, demo_dir / "error_vs_step.png", title="charged particles: rollout error against step")
    elapsed = time.perf_counter() - t0
    write_json(demo_dir / "results.json", {"models": rows, "seconds": elapsed, "seed": seed})
    lines = ["# graphdyn demo: ESTAG against baselines on charged particles", "",
             "Same data, split, target (next position) and training budget for every model; config `charged_estag`.", "",
             "| model | parameters | test MSE (next position) | rollout MSE at the last step | training time |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        roll = f"{_num(r['rollout_final_mse'], '.4g')} ({r['rollout_steps']} steps)" if r["rollout_steps"] else "n/a"
        lines.append(f"| {r['model']} | {r['parameters']} | {r['test_mse']:.4g} | {roll} | {r['fit_seconds']:.0f} s |")
    lines += ["", f"Command: `graphdyn demo estag --seed {seed}`; total {elapsed:.0f} s.", ""]
    write_text(demo_dir / "report.md", "\n".join(lines))
    typer.echo("")
    typer.echo(f"{'model':<18}{'params':>8}{'test MSE (next position)':>28}")
    for r in rows:
        typer.echo(f"{r['model']:<18}{r['parameters']:>8}{r['test_mse']:>28.4g}")
    best = min(rows, key=lambda r: r["test_mse"])
    typer.echo(f"\nbest: {best['model']}; wrote {demo_dir} in {elapsed:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def _num(value: float | None, spec: str) -> str:
    """A rollout number for a table: a rollout that went non-finite has none (None) and says so."""
    return "diverged" if value is None else format(value, spec)

