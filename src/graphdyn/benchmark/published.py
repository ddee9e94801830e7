"""The ESTAG paper's published Tables 1-3, shipped as data beside the benchmark specs.

``graphdyn/configs/benchmarks/published.yaml`` holds the poster's tables (ESTAG spec section 6)
exactly as printed, keyed by graphdyn model names (``pt_t``, ``egnn_s``, ``st_se3tr``,
``estag`` ...) and column keys (``aspirin`` ... ``uracil``; ``adk``; ``walk``, ``basketball``):

* ``values``: the printed numbers, i.e. the test MSE divided by the table's ``scale``
  (MD17 1e-3 in A^2, AdK 1 in A^2, Motion 1e-1 in ASF length units^2);
* ``seconds_per_epoch``: Table 2's training time per epoch (AdK only);
* ``best`` / ``second``: the poster's own bold and underlined entries, copied rather than
  recomputed (the poster's aspirin column underlines ST_SE(3)TR although EGNN-t is lower).

A benchmark spec names one table (``published: md17``); the result table then prints the
published number, with its poster mark, beside each measured one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graphdyn.errors import GraphdynError

PUBLISHED_PATH = Path(__file__).resolve().parent.parent / "configs" / "benchmarks" / "published.yaml"


class _TableSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    quantity: str = "test MSE"
    units: str
    scale: float = Field(gt=0)
    runs: int = Field(ge=1)
    columns: dict[str, str]
    labels: dict[str, str]
    values: dict[str, list[float]]
    seconds_per_epoch: dict[str, list[float]] = Field(default_factory=dict)
    best: dict[str, list[str]]
    second: dict[str, list[str]] = Field(default_factory=dict)
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "_TableSchema":
        n = len(self.columns)
        for what in ("values", "seconds_per_epoch"):
            for row, vals in getattr(self, what).items():
                if row not in self.labels:
                    raise ValueError(f"{what}: row {row!r} has no label")
                if len(vals) != n:
                    raise ValueError(f"{what}: row {row!r} has {len(vals)} values for {n} columns")
        for what in ("best", "second"):
            for col, rows in getattr(self, what).items():
                if col not in self.columns:
                    raise ValueError(f"{what}: unknown column {col!r}")
                for row in rows:
                    if row not in self.values:
                        raise ValueError(f"{what}: {col}: unknown row {row!r}")
        return self


@dataclass(frozen=True)
class PublishedTable:
    """One published table; numbers in its printed units (test MSE / ``scale``)."""

    key: str
    title: str
    quantity: str
    units: str
    scale: float
    runs: int
    columns: dict[str, str]  #: column key -> printed header
    labels: dict[str, str]  #: model name -> printed row label
    values: dict[str, dict[str, float]]  #: model -> column -> printed value
    seconds_per_epoch: dict[str, dict[str, float]] = field(default_factory=dict)
    best: dict[str, tuple[str, ...]] = field(default_factory=dict)
    second: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    def value(self, model: str, column: str) -> float | None:
        """The printed value of ``model`` in ``column``, or None when the table has none."""
        return self.values.get(model, {}).get(column)

    def time(self, model: str, column: str) -> float | None:
        """The printed seconds per epoch, or None."""
        return self.seconds_per_epoch.get(model, {}).get(column)

    def mark(self, model: str, column: str) -> str | None:
        """``"best"`` (bold on the poster), ``"second"`` (underlined) or None."""
        if model in self.best.get(column, ()):
            return "best"
        if model in self.second.get(column, ()):
            return "second"
        return None


@functools.lru_cache(maxsize=None)
def published_tables(path: str | None = None) -> dict[str, PublishedTable]:
    """Every table of ``published.yaml`` (or ``path``), validated."""
    src = Path(path) if path is not None else PUBLISHED_PATH
    raw = yaml.safe_load(src.read_text())
    out = {}
    for key, body in raw.items():
        try:
            t = _TableSchema(**body)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in (key, *err["loc"]))
            raise GraphdynError(err["msg"], path=src, field=loc) from None
        cols = list(t.columns)
        out[key] = PublishedTable(
            key=key, title=t.title, quantity=t.quantity, units=t.units, scale=t.scale, runs=t.runs,
            columns=dict(t.columns), labels=dict(t.labels),
            values={m: dict(zip(cols, v)) for m, v in t.values.items()},
            seconds_per_epoch={m: dict(zip(cols, v)) for m, v in t.seconds_per_epoch.items()},
            best={c: tuple(r) for c, r in t.best.items()}, second={c: tuple(r) for c, r in t.second.items()},
            note=t.note,
        )
    return out


def published_table(name: str) -> PublishedTable:
    """The published table ``name`` (``md17``, ``adk``, ``motion``)."""
    tables = published_tables()
    if name not in tables:
        raise GraphdynError(f"no published table {name!r}; known: {', '.join(tables)}", field="published")
    return tables[name]
