"""``graphdyn check-*`` commands: checks of the implementation against references and symmetries."""

from __future__ import annotations

from pathlib import Path

import typer


def check_reference_command(
    fixture: Path = typer.Argument(..., help="Reference fixture .npz (layout of shared/fixtures/README.md)."),
    tol: float = typer.Option(1e-8, "--tol", help="Largest allowed absolute deviation."),
) -> None:
    """Run the fixture's model in float64 on a reference fixture; print the max deviation per array.

    The model is chosen by the fixture's config.kind: single or multi (ESTAG), st_egnn, st_gnn, st_gmn.
    Exit code 0 when every deviation is at most --tol, 1 otherwise, 2 for a bad file.
    """
    from graphdyn.evaluation.reference import check_reference

    devs = check_reference(fixture)
    width = max(len(k) for k in devs)
    for name, dev in devs.items():
        flag = "" if dev <= tol else "  > tol"
        typer.echo(f"{name:<{width}}  {dev:.3e}{flag}")
    worst = max(devs.values())
    ok = worst <= tol
    typer.echo(f"max deviation {worst:.3e} (tolerance {tol:.1e}): {'OK' if ok else 'FAIL'}")
    if not ok:
        raise typer.Exit(1)


def check_equivariance(
    checkpoint: Path = typer.Argument(..., help="model.pt or best.ckpt written by graphdyn train."),
    steps: int = typer.Option(10, "--steps", min=1, help="Rollout steps to check."),
    atol: float = typer.Option(
        1e-6, "--atol", min=0.0,
        help="Largest allowed absolute deviation (float64; generous enough for float64 round-off growing along a rollout).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Test windows rolled out at once."),
    trials: int = typer.Option(1, "--trials", min=1, help="Random transforms drawn per kind."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random transforms."),
    require: list[str] = typer.Option(
        [], "--require",
        help="Also assert this transform (rotation, reflection, translation, frame_translation, permutation), "
        "whatever the model declares; repeatable. E.g. --require rotation on a model that does not claim it.",
    ),
) -> None:
    """Roll out a trained model from transformed test windows and compare with the transformed rollout.

    Transforms: rotations, reflections, translations (whole window and per frame), node permutations; all in float64.

    Prints the worst deviation per rollout step. Exit code 1 when a deviation the model claims to respect exceeds --atol, 2 on bad input.
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from graphdyn.errors import GraphdynError
    from graphdyn.evaluation.equivariance import Deviation, check_rollout, declared_symmetries
    from graphdyn.training.checkpoint import load_checkpoint

    if not checkpoint.is_file():
        raise GraphdynError("checkpoint not found", path=checkpoint)
    loaded = load_checkpoint(checkpoint)
    test = loaded.build_data().test
    if len(test) == 0:
        raise GraphdynError("the run's test split has no windows to roll out", path=checkpoint, field="data")
    batch = test.batch(np.arange(min(batch_size, len(test))))
    model = loaded.simulator.model
    if require:
        declared = declared_symmetries(model)
        model.symmetries = declared + tuple(t for t in dict.fromkeys(require) if t not in declared)
        declared_symmetries(model)  # an unknown name is a one-line error
    report = check_rollout(loaded.simulator, batch, steps, n_trials=trials, atol=atol, seed=seed)
    failures = report.failures

    # long rollouts: show log-spaced steps, then the worst over all steps per quantity
    width = len(str(steps))
    shown = sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, steps} & set(range(1, steps + 1))) if steps > 12 else range(1, steps + 1)
    outputs = []
    for q in ("x", "v"):
        names = [f"{q}@{k:0{width}d}" for k in range(1, steps + 1)]
        if report.get(names[0], report.transforms[0]) is None:
            continue
        outputs += [f"{q}@{k:0{width}d}" for k in shown]
        for t in report.transforms:
            devs = [report.get(n, t) for n in names]
            report.deviations.append(Deviation(t, f"{q} worst", max(d.max_abs for d in devs), max(d.scale for d in devs), devs[0].asserted))
        outputs.append(f"{q} worst")

    name = loaded.config.get("model", {}).get("name", type(model).__name__)
    console = Console(width=max(Console().width, 100))  # a piped run gets 80 columns, too few for the table
    header, body = report.rows(outputs)
    table = Table(title=f"{name} (target {model.target}): worst |rollout(g.batch) - g.rollout(batch)|, {len(batch.x)} windows, float64")
    for col in header:
        table.add_column(col, justify="left" if col == "output" else "right")
    for row in body:
        table.add_row(*[f"[bold red]{c}[/]" if c.endswith("FAIL") else c for c in row])
    console.print(table)
    console.print(f"declared symmetries: {', '.join(declared_symmetries(model))}; values in parentheses are reported only")
    if not getattr(model, "equivariant", False):
        console.print(f"note: model '{name}' does not claim E(n) equivariance (equivariant=False)")
    if not failures:
        console.print(f"passed: every declared deviation <= atol={atol:.1e}")
        return
    worst = max(d.max_abs for d in failures)
    console.print(f"[bold red]FAILED[/]: {len(failures)} (output, transform) deviations above atol={atol:.1e} (worst {worst:.2e})")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the check commands to ``app``."""
    app.command("check-reference")(check_reference_command)
    app.command("check-equivariance")(check_equivariance)
