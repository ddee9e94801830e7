"""One benchmark cell, run as its own process: ``python -m graphdyn.benchmark.cell``.

The harness (:mod:`graphdyn.benchmark.runner`) starts one such process per cell, so a cell
that crashes, leaks memory or diverges never takes the others down, ``--jobs N`` is N of them,
and each sets its own thread count. Two commands:

``run CELL_DIR [--resume] [--threads N]``
    Train the run config ``CELL_DIR/cell.yaml`` into ``CELL_DIR`` (an ordinary run folder:
    config.yaml, checkpoints/, metrics.csv, model.pt, results.json, report.md, figures/), with
    :func:`graphdyn.training.run.train`; ``--resume`` continues from
    ``CELL_DIR/checkpoints/last.ckpt``. Then write ``CELL_DIR/outcome.json``::

        {"status": "completed" | "diverged" | "failed", "message": one line or null,
         "test_mse": next-position test MSE, "parameters": trainable parameter count,
         "seconds_per_epoch", "peak_memory_mb", "epochs", "diverged_at": {epoch, step} or null,
         "wall_seconds", "resumed": bool}

    The numbers come from the run's results.json (status, test.pos_mse, parameters,
    fit.seconds_per_epoch, fit.peak_memory_mb, diverged); the process's own peak resident
    memory stands in where the run reports none.

    Exit codes: 0 completed, 3 diverged, 2 bad input (one line on stderr), 1 crash
    (traceback in the log), 4 the cell is locked by another live process.

``generate OUT.npz --params JSON``
    Molecular dynamics of one molecule (:class:`graphdyn.benchmark.spec.GenerateSpec` as JSON)
    with :mod:`graphdyn.physics.molecule`, the code behind ``graphdyn simulate molecule``,
    written atomically to ``OUT.npz``. A missing ``md`` extra is one line on stderr, exit 2.

Both take an exclusive lock (``fcntl.flock``) on a file beside their output for their whole
life and, on Linux, ask the kernel to kill them when the harness that started them dies
(``PR_SET_PDEATHSIG``), so a killed harness leaves no orphan training on into a folder the
next harness run will use.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphdyn.errors import GraphdynError
from graphdyn.io import write_json

PARENT_ENV = "GRAPHDYN_BENCHMARK_PARENT"
EXIT_DIVERGED = 3
EXIT_LOCKED = 4
#: files the harness owns in a cell folder; everything else is the run's
HARNESS_FILES = ("cell.json", "cell.yaml", "cell.log", ".lock")


def die_with_parent() -> None:
    """Linux: receive SIGKILL when the parent process dies; exit now if it already has."""
    expected = os.environ.get(PARENT_ENV)
    if expected is None:  # started by hand, not by a harness
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if str(os.getppid()) != expected:
        os._exit(EXIT_LOCKED)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive, non-blocking ``flock`` on ``path``; yields False when another
    process holds it. The kernel releases it when the process dies."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clear_run_files(cell_dir: Path) -> None:
    """Remove what a previous, unfinished attempt left in ``cell_dir`` (harness files stay)."""
    import shutil

    for p in cell_dir.iterdir():
        if p.name in HARNESS_FILES:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _train(config, cell_dir: Path, resume: bool) -> bool:
    """Train into ``cell_dir`` (resuming when asked and ``last.ckpt`` exists); returns
    whether it resumed. What an unfinished attempt left without a checkpoint is cleared."""
    from graphdyn.training.run import train

    resumed = resume and (cell_dir / "checkpoints" / "last.ckpt").is_file()
    if not resumed:
        clear_run_files(cell_dir)
    train(config, quiet=True, run_dir=cell_dir, resume=resumed)
    return resumed


def outcome_from_results(cell_dir: Path, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outcome of a run folder from its results.json; ``extra`` fills what it lacks."""
    results = _read_json(cell_dir / "results.json")
    out: dict[str, Any] = {"status": "failed", "message": None, "test_mse": None, "parameters": None,
                           "seconds_per_epoch": None, "peak_memory_mb": None, "epochs": None, "diverged_at": None}
    if results is not None:
        fit = results.get("fit") or {}
        mse = (results.get("test") or {}).get("pos_mse")  # null when not finite
        diverged = results.get("diverged") or {}
        out.update(status=results.get("status", "completed"), message=results.get("message"), test_mse=mse,
                   parameters=results.get("parameters"), seconds_per_epoch=fit.get("seconds_per_epoch"),
                   peak_memory_mb=fit.get("peak_memory_mb"), epochs=fit.get("epochs"),
                   diverged_at={"epoch": diverged["epoch"], "step": diverged.get("step")} if "epoch" in diverged else None)
    for key, value in (extra or {}).items():
        if out.get(key) is None:
            out[key] = value
    return out


def run_cell(cell_dir: Path, resume: bool, threads: int | None) -> int:
    from graphdyn.training.config import load_config

    t0 = time.perf_counter()
    config = load_config(cell_dir / "cell.yaml")
    if threads:
        config.training.threads = threads
    config.training.progress = False
    try:
        resumed = _train(config, cell_dir, resume)
    except GraphdynError as exc:
        _write_outcome(cell_dir, {"status": "failed", "message": str(exc), "exit_code": exc.exit_code}, t0)
        print(f"graphdyn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a crash: the traceback goes to the log, one line to the outcome
        traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        _write_outcome(cell_dir, {"status": "failed", "message": f"{exc.__class__.__name__}: {first}", "exit_code": 1}, t0)
        return 1
    outcome = outcome_from_results(cell_dir, extra={"resumed": resumed, "peak_memory_mb": peak_rss_mb()})
    _write_outcome(cell_dir, outcome, t0)
    if outcome["status"] == "diverged":
        print(outcome["message"], file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _write_outcome(cell_dir: Path, outcome: dict[str, Any], t0: float) -> None:
    outcome = {**outcome, "wall_seconds": time.perf_counter() - t0}
    write_json(cell_dir / "outcome.json", outcome)


def generate(out: Path, params: dict[str, Any]) -> int:
    from graphdyn.benchmark.spec import GenerateSpec
    from graphdyn.physics.molecule import MDConfig, resolve_smiles, simulate_molecule, write_md17

    spec = GenerateSpec(**params)
    smiles = spec.smiles if spec.smiles is not None else resolve_smiles(spec.molecule)
    config = MDConfig(smiles=smiles, steps=spec.steps, temperature=spec.temperature, dt=spec.dt, friction=spec.friction,
                      record_every=spec.record_every, seed=spec.seed, equilibration=spec.equilibration)
    try:
        write_md17(out, simulate_molecule(config))
    except GraphdynError as exc:
        print(f"graphdyn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphdyn.benchmark.cell")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("cell_dir", type=Path)
    p_run.add_argument("--resume", action="store_true")
    p_run.add_argument("--threads", type=int, default=None)
    p_gen = sub.add_parser("generate")
    p_gen.add_argument("out", type=Path)
    p_gen.add_argument("--params", required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    lock = args.cell_dir / ".lock" if args.command == "run" else args.out.with_name(f".{args.out.name}.lock")
    with exclusive(lock) as held:
        if not held:
            print(f"graphdyn: error: {lock.parent}: in use by another process", file=sys.stderr)
            return EXIT_LOCKED
        if args.command == "run":
            from graphdyn.training.memory import keep_freed_memory

            keep_freed_memory()  # this process's entry point, as graphdyn train (GRAPHDYN_KEEP_MEMORY=0: off)
            return run_cell(args.cell_dir, args.resume, args.threads)
        return generate(args.out, json.loads(args.params))


if __name__ == "__main__":
    sys.exit(main())
