"""The benchmark's comparison table: one row per model, one column per dataset.

Each entry aggregates a (dataset, model) pair over the spec's seeds:

* the test MSE of the next position at the best-validation epoch (ESTAG spec 3.4), mean and
  sample standard deviation (``ddof=1``; none for one seed) over the seeds that completed, in
  the table's units: ``MSE / scale`` (MD17 1e-3 A^2, AdK 1 A^2, Motion 1e-1; a spec sets its
  own for other data);
* the published number beside it, with the poster's own mark (:mod:`graphdyn.benchmark.published`);
* the cost: trainable parameter count, seconds per training epoch (mean over seeds; Table 2's
  published time beside it where there is one) and peak memory (max over seeds, MiB: the
  training's figure when it reports one, else the cell process's peak resident memory);
* our marks: per column, the lowest mean in **bold** and the second lowest underlined, as the
  poster marks its tables. Only entries whose every seed completed compete; equal printed
  values share a mark.

Entries that could not be measured say why instead of showing a number: ``diverged (epoch
E)``, ``missing data``, ``failed``, ``not run``; some seeds diverged: the mean of the others
with ``k/n diverged``. Never a bare ``nan``.

Files (each written atomically): ``results.md`` (the table for people, with a cost table and
notes), ``results.csv`` (one line per entry), ``results.json`` (entries and every cell) and
``results.png`` (grouped bars per dataset, ours with seed spread against published, log scale).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graphdyn.benchmark.published import PublishedTable, published_table
from graphdyn.benchmark.runner import CellResult, RunSummary
from graphdyn.benchmark.spec import BenchmarkSpec
from graphdyn.io import atomic_path, write_json, write_text


@dataclass
class Column:
    key: str  #: dataset key
    label: str
    scale: float
    units: str
    published: str | None  #: column of the published table


@dataclass
class Entry:
    dataset: str
    model: str
    label: str
    seeds: int  #: seeds asked for
    values: dict[int, float] = field(default_factory=dict)  #: seed -> raw test MSE (completed seeds)
    mean: float | None = None  #: in table units
    std: float | None = None
    status: str = "not_run"  #: ok | partial | diverged | failed | missing_data | not_run | absent
    note: str | None = None
    published: float | None = None
    published_mark: str | None = None
    published_seconds_per_epoch: float | None = None
    parameters: int | None = None
    seconds_per_epoch: float | None = None
    peak_memory_mb: float | None = None
    mark: str | None = None  #: best | second among ours


def decimals(v: float) -> int:
    """Decimals to print ``v`` with: three like the paper, or three significant digits below 0.01."""
    if v == 0 or not math.isfinite(v) or abs(v) >= 0.01:
        return 3
    return min(2 - math.floor(math.log10(abs(v))), 8)


def fmt(v: float | None, places: int | None = None) -> str:
    """A table number with ``places`` decimals (default :func:`decimals`); "–" for none."""
    if v is None or not math.isfinite(v):
        return "–"
    if v != 0 and abs(v) < 1e-6:
        return f"{v:.3g}"
    return f"{v:.{decimals(v) if places is None else places}f}"


def fmt_mean_std(mean: float, std: float | None) -> str:
    """``mean ± std``, the std with the mean's decimals."""
    return fmt(mean) + ("" if std is None else f" ± {fmt(std, decimals(mean))}")


@dataclass
class ResultTable:
    spec: BenchmarkSpec
    title: str
    columns: list[Column]
    rows: list[tuple[str, str]]  #: (model key, label)
    entries: dict[tuple[str, str], Entry]
    notes: list[str]
    cells: list[dict[str, Any]]
    published: PublishedTable | None = None
    command: str = ""  #: the command that (re)makes this table

    # ------------------------------------------------------------------ text
    def entry_text(self, e: Entry, *, markup: str = "md") -> str:
        """One cell of the main table: ours (marked), then the published number in parentheses."""
        if e.status == "absent":
            return "–"
        if e.mean is None:
            ours = e.note or e.status.replace("_", " ")
        else:
            ours = fmt_mean_std(e.mean, e.std)
            ours = _mark(ours, e.mark, markup)
            if e.note:
                ours += f" ({e.note})"
        if e.published is not None:
            ours += f" ({_mark(fmt(e.published), e.published_mark, markup)})"
        return ours

    def cost_text(self, e: Entry) -> str:
        if e.status == "absent" or (e.parameters is None and e.seconds_per_epoch is None):
            return "–"
        sec = "–" if e.seconds_per_epoch is None else f"{e.seconds_per_epoch:.3g} s"
        if e.published_seconds_per_epoch is not None:
            sec += f" ({e.published_seconds_per_epoch:g} s)"
        mem = "–" if e.peak_memory_mb is None else f"{e.peak_memory_mb:.0f} MB"
        params = "–" if e.parameters is None else f"{e.parameters:,}"
        return f"{params} / {sec} / {mem}"

    def header(self) -> list[str]:
        return [f"{c.label} ({_units(c)})" if _units(c) else c.label for c in self.columns]

    def legend(self) -> str:
        seeds = len(self.spec.seeds)
        text = (f"Test MSE of the next position at the best-validation epoch, mean ± std over {seeds} seed(s) "
                f"({', '.join(map(str, self.spec.seeds))}); **bold** best, <u>underlined</u> second best per column.")
        if self.published is not None:
            text += f" In parentheses: published ({self.published.title}; marks as on the poster)."
        return text

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.spec.schema.description:
            lines += [self.spec.schema.description.strip(), ""]
        lines += [self.legend(), ""]
        lines += _md_table(["method", *self.header()], [[label, *(self.entry_text(self.entries[(c.key, m)]) for c in self.columns)]
                                                        for m, label in self.rows])
        lines += ["", "Cost per cell: trainable parameters / seconds per training epoch (published in parentheses) / peak memory.", ""]
        lines += _md_table(["method", *(c.label for c in self.columns)],
                           [[label, *(self.cost_text(self.entries[(c.key, m)]) for c in self.columns)] for m, label in self.rows])
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        lines += ["", f"Command: `{self.command}` (rerunning it skips finished cells; each cell is a run folder under `cells/`).", ""]
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        fields = ["dataset", "dataset_label", "model", "label", "status", "note", "seeds_completed", "seeds", "mean", "std", "units",
                  "scale", "mse_mean", "mse_std", "published", "published_mark", "mark", "parameters", "seconds_per_epoch",
                  "published_seconds_per_epoch", "peak_memory_mb", "per_seed_mse"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for c in self.columns:
            for m, label in self.rows:
                e = self.entries[(c.key, m)]
                if e.status == "absent":
                    continue
                raw = list(e.values.values())
                w.writerow({
                    "dataset": c.key, "dataset_label": c.label, "model": m, "label": label, "status": e.status, "note": e.note or "",
                    "seeds_completed": len(raw), "seeds": e.seeds, "mean": _num(e.mean), "std": _num(e.std), "units": c.units,
                    "scale": c.scale, "mse_mean": _num(statistics.fmean(raw) if raw else None),
                    "mse_std": _num(statistics.stdev(raw) if len(raw) > 1 else None), "published": _num(e.published),
                    "published_mark": e.published_mark or "", "mark": e.mark or "", "parameters": "" if e.parameters is None else e.parameters,
                    "seconds_per_epoch": _num(e.seconds_per_epoch), "published_seconds_per_epoch": _num(e.published_seconds_per_epoch),
                    "peak_memory_mb": _num(e.peak_memory_mb), "per_seed_mse": ";".join(f"{s}:{v:.6g}" for s, v in e.values.items()),
                })
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name,
            "title": self.title,
            "seeds": self.spec.seeds,
            "published_table": None if self.published is None else self.published.key,
            "columns": [asdict(c) for c in self.columns],
            "rows": [{"model": m, "label": label} for m, label in self.rows],
            "entries": [asdict(e) for e in self.entries.values() if e.status != "absent"],
            "notes": self.notes,
            "command": self.command,
            "cells": self.cells,
        }

    def to_rich(self):
        """A rich Table for the terminal (same content as the markdown's main table)."""
        from rich.table import Table

        t = Table(title=self.title, caption=self.legend().replace("**bold**", "bold").replace("<u>underlined</u>", "underlined"))
        t.add_column("method")
        for h in self.header():
            t.add_column(h, justify="right")
        for m, label in self.rows:
            t.add_row(label, *(self.entry_text(self.entries[(c.key, m)], markup="rich") for c in self.columns))
        return t

    # ------------------------------------------------------------------ files
    def write(self, out: Path) -> list[Path]:
        """results.md, results.csv, results.json, results.png in ``out``."""
        out = Path(out)
        write_text(out / "results.md", self.to_markdown())
        write_text(out / "results.csv", self.to_csv())
        write_json(out / "results.json", self.to_json())
        paths = [out / "results.md", out / "results.csv", out / "results.json"]
        if self.figure(out / "results.png") is not None:
            paths.append(out / "results.png")
        return paths

    def figure(self, path: Path) -> Path | None:
        """Grouped bars per dataset: ours (seed spread as error bars) beside published, log scale."""
        if not any(e.mean is not None for e in self.entries.values()):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ncols = min(4, len(self.columns))
        nrows = math.ceil(len(self.columns) / ncols)
        width = max(3.2, 0.42 * len(self.rows) + 1.2)
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.6 * nrows), squeeze=False)
        for ax, col in zip(axes.flat, self.columns):
            xs = range(len(self.rows))
            ours = [self.entries[(col.key, m)] for m, _ in self.rows]
            mean = [e.mean if e.mean is not None else float("nan") for e in ours]
            err = [e.std if e.std is not None else 0.0 for e in ours]
            pub = [e.published if e.published is not None else float("nan") for e in ours]
            has_pub = any(math.isfinite(v) for v in pub)
            w = 0.4 if has_pub else 0.7
            ax.bar([x - (w / 2 if has_pub else 0) for x in xs], mean, w, yerr=err, capsize=2, label="ours", color="tab:blue")
            if has_pub:
                ax.bar([x + w / 2 for x in xs], pub, w, label="published", color="tab:gray", alpha=0.6, hatch="//")
            for x, e in zip(xs, ours):
                if e.mean is None and e.status != "absent":
                    ax.text(x, 0.02, (e.note or e.status).replace("_", " "), rotation=90, ha="center", va="bottom", fontsize=7,
                            transform=ax.get_xaxis_transform())
            ax.set_yscale("log")
            ax.set_xticks(list(xs))
            ax.set_xticklabels([label for _, label in self.rows], rotation=60, ha="right", fontsize=8)
            ax.set_title(col.label)
            ax.set_ylabel(f"test MSE ({_units(col)})" if _units(col) else "test MSE")
            ax.grid(True, axis="y", alpha=0.3)
        for ax in list(axes.flat)[len(self.columns):]:
            ax.axis("off")
        handles = {}
        for ax in axes.flat:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        fig.legend(list(handles.values()), list(handles), loc="upper right", fontsize=8)
        fig.suptitle(self.title)
        fig.tight_layout(rect=(0, 0, 0.92, 1))
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        return path


def _units(c: Column) -> str:
    """``×10^-3 A^2``, ``A^2``, ``×10^-2`` or empty."""
    if c.scale == 1:
        return c.units
    exp = math.log10(c.scale)
    scale = f"×10^{int(round(exp))}" if abs(exp - round(exp)) < 1e-9 else f"×{c.scale:g}"
    return f"{scale} {c.units}".strip()


def _mark(text: str, mark: str | None, markup: str) -> str:
    if mark is None:
        return text
    if markup == "rich":
        return f"[bold]{text}[/bold]" if mark == "best" else f"[underline]{text}[/underline]"
    return f"**{text}**" if mark == "best" else f"<u>{text}</u>"


def _num(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.6g}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# ---------------------------------------------------------------------------- building
def build_table(summary: RunSummary) -> ResultTable:
    """Aggregate a run's cells into the comparison table."""
    spec = summary.spec
    pub = published_table(spec.schema.published) if spec.schema.published else None
    columns = []
    for key, ds in spec.datasets.items():
        pcol = ds.published if ds.published is not None else (key if pub is not None and key in pub.columns else None)
        scale = ds.scale if ds.scale is not None else (pub.scale if pub is not None else 1.0)
        units = ds.units if ds.units is not None else (pub.units if pub is not None else "")
        label = ds.label or (pub.columns[pcol] if pub is not None and pcol is not None else key)
        columns.append(Column(key, label, scale, units, pcol))
    rows = []
    for m in spec.models:
        prow = m.published or m.row
        label = m.label or (pub.labels.get(prow) if pub is not None else None) or m.row
        rows.append((m.row, label))
    by_pair: dict[tuple[str, str], list[CellResult]] = {}
    for r in summary.results:
        by_pair.setdefault((r.cell.dataset, r.cell.model), []).append(r)
    entries = {}
    for col in columns:
        for m in spec.models:
            cells = by_pair.get((col.key, m.row), [])
            e = aggregate(cells, col, m.row, m.label or dict(rows)[m.row], len(spec.seeds))
            if pub is not None and col.published is not None:
                prow = m.published or m.row
                e.published = pub.value(prow, col.published)
                e.published_mark = pub.mark(prow, col.published)
                e.published_seconds_per_epoch = pub.time(prow, col.published)
            entries[(col.key, m.row)] = e
    for col in columns:
        mark_column([entries[(col.key, m)] for m, _ in rows])
    notes = list(summary.missing.values())
    for r in summary.results:
        if r.status == "failed":
            notes.append(f"{r.cell.label} failed: {r.message} (see {summary.out / r.cell.rel_dir / 'cell.log'})")
    if pub is not None and pub.note:
        notes.append(pub.note)
    cells = [{"dataset": r.cell.dataset, "model": r.cell.model, "seed": r.cell.seed, "status": r.status,
              "skipped": r.skipped, "run_dir": str(r.cell.rel_dir), "fingerprint": r.cell.fingerprint, "message": r.message,
              **{k: r.outcome.get(k) for k in ("test_mse", "parameters", "seconds_per_epoch", "peak_memory_mb", "epochs", "diverged_at", "wall_seconds")}}
             for r in summary.results]
    title = f"Benchmark {spec.name}"
    return ResultTable(spec, title, columns, rows, entries, notes, cells, pub, command=benchmark_command(spec, summary.out))


def benchmark_command(spec: BenchmarkSpec, out: Path) -> str:
    """``graphdyn benchmark <spec> [--out <folder>]``: the built-in name when the spec is one."""
    from graphdyn.benchmark.runner import default_out
    from graphdyn.benchmark.spec import SPEC_DIR

    builtin = spec.path is not None and spec.path.resolve().parent == SPEC_DIR
    cmd = f"graphdyn benchmark {spec.name if builtin else spec.path}"
    if Path(out) != default_out(spec):
        cmd += f" --out {out}"
    return cmd


def aggregate(cells: list[CellResult], col: Column, model: str, label: str, n_seeds: int) -> Entry:
    """One table entry from a (dataset, model) pair's cells (see the module docstring)."""
    e = Entry(col.key, model, label, n_seeds)
    if not cells:
        e.status = "absent"
        return e
    done = [r for r in cells if r.status == "completed" and r.outcome.get("test_mse") is not None]
    diverged = [r for r in cells if r.status == "diverged"]
    e.values = {r.cell.seed: float(r.outcome["test_mse"]) for r in done}
    if done:
        scaled = [v / col.scale for v in e.values.values()]
        e.mean = statistics.fmean(scaled)
        e.std = statistics.stdev(scaled) if len(scaled) > 1 else None
    measured = [r for r in cells if r.status in ("completed", "diverged")]
    params = [r.outcome.get("parameters") for r in measured if r.outcome.get("parameters") is not None]
    e.parameters = params[0] if params else None
    secs = [r.outcome["seconds_per_epoch"] for r in measured if r.outcome.get("seconds_per_epoch") is not None]
    e.seconds_per_epoch = statistics.fmean(secs) if secs else None
    mems = [r.outcome["peak_memory_mb"] for r in measured if r.outcome.get("peak_memory_mb") is not None]
    e.peak_memory_mb = max(mems) if mems else None
    epochs = sorted({(r.outcome.get("diverged_at") or {}).get("epoch") for r in diverged} - {None})
    at = f" (epoch {', '.join(map(str, epochs))})" if epochs else ""
    if len(done) == len(cells):
        e.status = "ok"
    elif done:
        e.status = "partial"
        parts = []
        if diverged:
            parts.append(f"{len(diverged)}/{len(cells)} diverged{at}")
        rest = len(cells) - len(done) - len(diverged)
        if rest:
            parts.append(f"{rest}/{len(cells)} " + _worst([r.status for r in cells if r.status not in ("completed", "diverged")]).replace("_", " "))
        e.note = ", ".join(parts)
    elif diverged:
        e.status = "diverged"
        e.note = f"diverged{at}"
    else:
        e.status = _worst([r.status for r in cells])
        e.note = e.status.replace("_", " ")
    return e


def _worst(statuses: list[str]) -> str:
    for s in ("failed", "missing_data", "not_run"):
        if s in statuses:
            return s
    return statuses[0] if statuses else "not_run"


def mark_column(entries: list[Entry]) -> None:
    """Set ``mark`` to ``best`` / ``second`` on the lowest and second-lowest printed means
    among fully completed entries (equal printed values share a mark)."""
    for e in entries:
        e.mark = None
    ranked = sorted({float(fmt(e.mean)) for e in entries if e.status == "ok" and e.mean is not None})
    for e in entries:
        if e.status != "ok" or e.mean is None:
            continue
        v = float(fmt(e.mean))
        if v == ranked[0]:
            e.mark = "best"
        elif len(ranked) > 1 and v == ranked[1]:
            e.mark = "second"
