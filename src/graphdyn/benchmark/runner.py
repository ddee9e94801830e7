"""Run every cell of a benchmark spec: resumable, in parallel processes, never mixing specs.

Layout of a benchmark folder (``--out``; default ``runs/benchmark-<spec name>``, fixed so
that rerunning the same command finds the same folder)::

    spec.yaml                 the resolved spec of the last run
    benchmark.log             one line per event, appended by every run
    data/<dataset>.npz        data made by a dataset's ``generate`` step (+ .json: its settings)
    cells/<dataset>/<model>/seed<k>/   one ordinary run folder per cell, plus
        cell.json             what the harness asked for: dataset, model, seed, fingerprint
        cell.yaml             the run config the cell's process trains
        cell.log              that process's output
        outcome.json          status, test MSE, parameters, s/epoch, peak memory (graphdyn.benchmark.cell)
    results.md, results.csv, results.json, results.png   the table (graphdyn.benchmark.table)

State of a cell when a run starts, from its folder alone:

* **finished**: ``results.json`` exists (training wrote it last): skipped, never retrained;
* **interrupted**: ``checkpoints/last.ckpt`` exists: resumed from it;
* **new**: anything else (nothing yet, or a failed attempt): trained from scratch;
* **changed**: ``cell.json``'s fingerprint (a hash of the cell's run config) differs from
  the spec's. A changed spec never mixes silently with old results: the run stops with one
  line naming the cells, unless ``rerun_changed`` is set, which deletes and retrains them.
  Cells the spec adds are simply new; cells it drops stay on disk but leave the table.

Each cell runs in its own process (``python -m graphdyn.benchmark.cell run``), ``jobs`` at a
time, each with ``max(1, cores // jobs)`` torch threads; killing the harness kills them (see
:mod:`graphdyn.benchmark.cell`), so any moment is a safe moment to stop. The folder itself is
locked while a harness runs in it.

Data. Before any cell starts, each dataset's files are looked up (MD17, mocap, AdK, ``file``
sources; simulated ones need none); a dataset whose data is missing gets one line saying
which file to put where, its cells are marked "missing data", and every other cell still
runs. A ``generate`` step runs as one more process (cells of that dataset wait for it) and
is cached in ``data/``; if it fails (e.g. the ``md`` extra is not installed), its cells are
likewise "missing data" and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from graphdyn.benchmark.cell import PARENT_ENV, _read_json, exclusive, outcome_from_results
from graphdyn.benchmark.spec import BenchmarkSpec, Cell, DatasetSpec, substitute
from graphdyn.errors import GraphdynError
from graphdyn.io import write_json, write_text

DEFAULT_ROOT = Path("runs")


def default_out(spec: BenchmarkSpec) -> Path:
    """The benchmark folder used when none is given: ``runs/benchmark-<name>``."""
    return DEFAULT_ROOT / f"benchmark-{spec.name}"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class CellResult:
    """A cell as the table sees it."""

    cell: Cell
    status: str  #: completed | diverged | failed | missing_data | not_run
    outcome: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    skipped: bool = False  #: finished before this run started


@dataclass
class RunSummary:
    spec: BenchmarkSpec
    out: Path
    results: list[CellResult]
    missing: dict[str, str]  #: dataset -> one-line message
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


# ---------------------------------------------------------------------------- data checks
def data_problem(source: str, options: dict[str, Any]) -> str | None:
    """A one-line message when the files a dataset reads are missing, else None. Only looks
    files up (cheap); simulated datasets need none. Bad options are reported the same way."""
    try:
        if source == "md17":
            from graphdyn.data.md17 import Md17Options, resolve_source
            from graphdyn.data.registry import parse_options

            resolve_source(parse_options(Md17Options, options))
        elif source == "mocap":
            from graphdyn.data.mocap import MocapOptions, resolve_files
            from graphdyn.data.registry import parse_options

            resolve_files(parse_options(MocapOptions, options))
        elif source == "adk":
            from graphdyn.data.adk import AdkOptions, resolve_files
            from graphdyn.data.registry import parse_options

            top, trajs, _ = resolve_files(parse_options(AdkOptions, options))
            for f in (top, *(trajs or [])):
                if not Path(f).is_file():
                    raise GraphdynError("file not found", path=f)
        elif source == "file":
            path = Path(str(options.get("path", ""))).expanduser()
            if not path.is_file():
                raise GraphdynError("file not found (data.options.path)", path=path)
    except GraphdynError as exc:
        return str(exc)
    return None


def _generated_paths(out: Path, dataset: str) -> tuple[Path, Path]:
    return out / "data" / f"{dataset}.npz", out / "data" / f"{dataset}.json"


def _generation_ready(out: Path, dataset: str, ds: DatasetSpec) -> bool:
    npz, meta = _generated_paths(out, dataset)
    return npz.is_file() and _read_json(meta) == ds.generate.model_dump(mode="json")


# ---------------------------------------------------------------------------- cell state
def cell_state(cell_dir: Path, fingerprint: str) -> str:
    """``new``, ``finished``, ``interrupted`` or ``changed`` (see the module docstring)."""
    if not cell_dir.exists():
        return "new"
    record = _read_json(cell_dir / "cell.json")
    has_results = (cell_dir / "results.json").is_file()
    if record is None:
        return "changed" if has_results else "new"
    if record.get("fingerprint") != fingerprint:
        return "changed"
    if has_results:
        return "finished"
    if (cell_dir / "checkpoints" / "last.ckpt").is_file():
        return "interrupted"
    return "new"


def finished_outcome(cell_dir: Path) -> dict[str, Any]:
    """The outcome of a finished cell: ``outcome.json``, completed from ``results.json`` (a
    harness killed between the two leaves only the latter)."""
    outcome = _read_json(cell_dir / "outcome.json")
    if outcome is not None and outcome.get("status") in ("completed", "diverged"):
        return outcome
    return outcome_from_results(cell_dir)


# ---------------------------------------------------------------------------- processes
@dataclass
class _Task:
    kind: str  #: "cell" or "generate"
    dataset: str
    cell: Cell | None = None
    resume: bool = False


class _Runner:
    def __init__(self, spec: BenchmarkSpec, out: Path, jobs: int, echo: Callable[[str], None]):
        self.spec = spec
        self.out = out
        self.jobs = jobs
        self.threads = max(1, cpu_count() // jobs)
        self._echo = echo
        self.log_path = out / "benchmark.log"
        self.mapping = {"out": str(out.resolve()), "data": str(_data_dir())}

    def echo(self, line: str) -> None:
        self._echo(line)
        with open(self.log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def popen(self, args: list[str], log: Path) -> subprocess.Popen:
        env = dict(os.environ)
        env[PARENT_ENV] = str(os.getpid())
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(self.threads)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            return subprocess.Popen([sys.executable, "-m", "graphdyn.benchmark.cell", *args], stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)

    def start(self, task: _Task) -> subprocess.Popen:
        if task.kind == "generate":
            npz, _ = _generated_paths(self.out, task.dataset)
            params = self.spec.datasets[task.dataset].generate.model_dump(mode="json")
            self.echo(f"generate {task.dataset}: molecular dynamics, {params['steps']} steps ({params.get('molecule') or params.get('smiles')})")
            return self.popen(["generate", str(npz), "--params", json.dumps(params)], npz.with_suffix(".log"))
        cell = task.cell
        cell_dir = self.out / cell.rel_dir
        cell_dir.mkdir(parents=True, exist_ok=True)
        _wait_unlocked(cell_dir / ".lock")
        if not task.resume:
            (cell_dir / "outcome.json").unlink(missing_ok=True)
        write_json(cell_dir / "cell.json", {"spec": self.spec.name, "dataset": cell.dataset, "model": cell.model, "seed": cell.seed,
                                            "fingerprint": cell.fingerprint, "config": cell.config})
        config = substitute(cell.config, self.mapping)
        config["output_dir"] = str(cell_dir.parent)
        write_text(cell_dir / "cell.yaml", yaml.safe_dump(config, sort_keys=False))
        args = ["run", str(cell_dir), "--threads", str(self.threads)]
        if task.resume:
            args.append("--resume")
        return self.popen(args, cell_dir / "cell.log")


def _wait_unlocked(lock: Path, timeout: float = 30.0) -> None:
    """Wait until no process holds ``lock``: the process of a cell whose harness was killed
    a moment ago may still be on its way out. (Its successor then reports the lock.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with exclusive(lock) as held:
            if held:
                return
        time.sleep(0.1)


def _data_dir() -> Path:
    from graphdyn.data.cache import data_dir

    return data_dir().expanduser().resolve()


def _last_line(path: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def _fmt_mse(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def run_benchmark(spec: BenchmarkSpec, out: Path | None = None, *, jobs: int | None = None, rerun_changed: bool = False,
                  echo: Callable[[str], None] = print, poll_s: float = 0.1) -> RunSummary:
    """Train every cell of ``spec`` not finished yet in ``out``; returns what each cell holds.

    Raises GraphdynError (one line) when the folder is in use by another harness, or when
    cells changed and ``rerun_changed`` is False.
    """
    t0 = time.perf_counter()
    out = Path(out) if out is not None else default_out(spec)
    jobs = max(1, int(jobs or spec.schema.jobs or 1))
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out / ".lock") as held:
        if not held:
            pid = (out / ".lock").read_text().strip() or "?"
            raise GraphdynError(f"another graphdyn benchmark (process {pid}) is running in this folder", path=out)
        return _run_locked(spec, out, jobs, rerun_changed, echo, poll_s, t0)


def _run_locked(spec: BenchmarkSpec, out: Path, jobs: int, rerun_changed: bool, echo: Callable[[str], None], poll_s: float, t0: float) -> RunSummary:
    runner = _Runner(spec, out, jobs, echo)
    cells = spec.cells()
    states = {c: cell_state(out / c.rel_dir, c.fingerprint) for c in cells}
    changed = [c for c in cells if states[c] == "changed"]
    if changed and not rerun_changed:
        names = ", ".join(c.label for c in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise GraphdynError(
            f"{len(changed)} finished cell(s) were trained with other settings than the spec now asks for ({names}); "
            "rerun with --rerun-changed to retrain them, or use another --out folder",
            path=out,
        )
    for c in changed:
        shutil.rmtree(out / c.rel_dir)
        states[c] = "new"
    write_text(out / "spec.yaml", yaml.safe_dump(spec.resolved(), sort_keys=False))
    runner.echo(f"benchmark {spec.name}: {len(cells)} cells ({len(spec.datasets)} datasets x {len(spec.models)} models x "
                f"{len(spec.seeds)} seeds), {jobs} at a time, {runner.threads} thread(s) each, in {out}")

    missing: dict[str, str] = {}
    generating: set[str] = set()
    queue: deque[_Task] = deque()
    for key, ds in spec.datasets.items():
        if ds.generate is not None:
            if not _generation_ready(out, key, ds):
                generating.add(key)
                queue.append(_Task("generate", key))
            continue
        problem = data_problem(ds.source, substitute(ds.options, runner.mapping))
        if problem is not None:
            missing[key] = f"{key}: {problem}" + (f" ({substitute(ds.hint, runner.mapping)})" if ds.hint else "")
            runner.echo(f"missing data: {missing[key]}")

    results: dict[Cell, CellResult] = {}
    n = len(cells)
    for i, c in enumerate(cells):
        if states[c] == "finished":
            outcome = finished_outcome(out / c.rel_dir)
            results[c] = CellResult(c, outcome["status"], outcome, outcome.get("message"), skipped=True)
            runner.echo(f"[{i + 1}/{n}] skipped {c.label}: finished earlier ({outcome['status']}, test MSE {_fmt_mse(outcome.get('test_mse'))})")
        else:
            queue.append(_Task("cell", c.dataset, c, resume=states[c] == "interrupted"))
    index = {c: i + 1 for i, c in enumerate(cells)}

    running: dict[subprocess.Popen, tuple[_Task, float]] = {}
    native_ready = False
    try:
        while queue or running:
            for task in list(queue):
                if len(running) >= jobs:
                    break
                if task.kind == "cell":
                    if task.dataset in missing:
                        queue.remove(task)
                        results[task.cell] = CellResult(task.cell, "missing_data", message=missing[task.dataset])
                        continue
                    if task.dataset in generating:
                        continue
                    if not native_ready:  # once, before the first cell (a generation may run meanwhile)
                        _prepare_native(runner)
                        native_ready = True
                    verb = "resume" if task.resume else "start"
                    runner.echo(f"[{index[task.cell]}/{n}] {verb} {task.cell.label}")
                queue.remove(task)
                running[runner.start(task)] = (task, time.perf_counter())
            done = [p for p in running if p.poll() is not None]
            if not done:
                time.sleep(poll_s)
                continue
            for p in done:
                task, started = running.pop(p)
                seconds = time.perf_counter() - started
                if task.kind == "generate":
                    _finish_generation(runner, task.dataset, p.returncode, seconds, missing, generating)
                else:
                    results[task.cell] = _finish_cell(runner, task.cell, p.returncode, seconds, f"[{index[task.cell]}/{n}]")
    finally:
        for p in running:  # interrupted (Ctrl-C): stop the children, keep their checkpoints
            p.terminate()
        for p in running:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    ordered = [results.get(c) or CellResult(c, "not_run") for c in cells]
    return RunSummary(spec, out, ordered, missing, time.perf_counter() - t0)


def _prepare_native(runner: _Runner) -> None:
    """Build (or find) the native kernels once, here, so that cells starting in parallel on
    a fresh machine do not each compile them (graphdyn.native caches the library)."""
    import warnings

    from graphdyn import native

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing compiler: each cell's log says so
        native.load()
    if time.perf_counter() - t0 > 2:
        runner.echo(f"native kernels built in {time.perf_counter() - t0:.0f} s (once per machine)")


def _finish_generation(runner: _Runner, dataset: str, code: int, seconds: float, missing: dict[str, str], generating: set[str]) -> None:
    npz, meta = _generated_paths(runner.out, dataset)
    generating.discard(dataset)
    if code == 0 and npz.is_file():
        write_json(meta, runner.spec.datasets[dataset].generate.model_dump(mode="json"))
        runner.echo(f"generated {dataset} in {seconds:.0f} s: {npz}")
        return
    line = _last_line(npz.with_suffix(".log")) or f"exited with code {code}"
    missing[dataset] = f"{dataset}: could not generate the data: {line.removeprefix('graphdyn: error: ')}"
    runner.echo(f"missing data: {missing[dataset]}")


def _finish_cell(runner: _Runner, cell: Cell, code: int, seconds: float, tag: str) -> CellResult:
    cell_dir = runner.out / cell.rel_dir
    outcome = _read_json(cell_dir / "outcome.json")
    if outcome is None:  # the process died without a word (killed, out of memory)
        line = _last_line(cell_dir / "cell.log")
        msg = f"process exited with code {code}" + (f": {line}" if line else "")
        outcome = {"status": "failed", "message": msg, "exit_code": code}
        write_json(cell_dir / "outcome.json", outcome)
    status = outcome.get("status", "failed")
    if status == "completed":
        extra = " (resumed)" if outcome.get("resumed") else ""
        runner.echo(f"{tag} done {cell.label}: test MSE {_fmt_mse(outcome.get('test_mse'))} in {seconds:.0f} s{extra}")
    elif status == "diverged":
        at = outcome.get("diverged_at") or {}
        runner.echo(f"{tag} diverged {cell.label}" + (f" at epoch {at['epoch']}" if "epoch" in at else "") + f": {outcome.get('message') or 'non-finite loss'}")
    else:
        runner.echo(f"{tag} FAILED {cell.label}: {outcome.get('message')} (log: {cell_dir / 'cell.log'})")
    return CellResult(cell, status, outcome, outcome.get("message"))
