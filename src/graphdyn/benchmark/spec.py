"""Benchmark specs: which models, datasets and seeds to train, under which settings.

A spec is a YAML file (or a built-in one by name, ``graphdyn/configs/benchmarks/<name>.yaml``:
``paper_md17``, ``paper_adk``, ``paper_motion``, ``ablation_md17``, ``quick``). Every key is
checked; an unknown one is an error naming the file and the key. Example::

    name: quick                    # default: the file name
    description: ...
    published: md17                # published table to print beside ours (md17 | adk | motion)
    base: estag_md17               # run config every cell starts from (its model section is ignored)
    seeds: [1, 2]
    jobs: 2                        # default of --jobs
    config:                        # run-config sections shared by every cell
      training: {epochs: 30, lr: 0.005}
    datasets:
      ethanol:                     # key: the table column and the cell folder name
        source: md17
        options: {molecule: ethanol}
        T: 10                      # optional window override
        delta: 10
        published: ethanol         # column of the published table (default: the key, if it has one)
        scale: 1.0e-3              # table value = MSE / scale (default: the published table's)
        units: "A^2"
        generate: {molecule: ethanol, steps: 4000}   # make the data first (graphdyn simulate molecule)
        hint: ...                  # appended to a missing-data message
        config: {training: {epochs: 40}}             # run-config overrides for this dataset's cells
    models:
      - pt_t                       # a registered model or named variant
      - name: st_egnn
        key: st_egnn               # row id and folder name (default: name)
        label: ST_EGNN             # row label (default: the published table's label, else the key)
        params: {hidden: 16}
        config: {training: {lr: 0.001}}
        datasets: {adk: {model: {params: {coord_weight: 3.0}}}}   # per-dataset overrides
        only: [ethanol]            # datasets this model runs on (default: all)

A cell's run config is built by deep-merging, later wins: the ``base`` config (minus its
``model``), ``config``, the dataset (``data.source`` and ``data.options`` replace the base's;
``T`` / ``delta``; its ``config``), the model (``model.name``, ``model.params``; its
``config``), the model's per-dataset overrides, and finally ``seed``. Every cell is validated
as a :class:`~graphdyn.training.config.RunConfig` when the spec is loaded.

String options may use ``{data}`` (the graphdyn data folder: ``$GRAPHDYN_DATA`` or
``~/.cache/graphdyn``) and ``{out}`` (the benchmark folder); a dataset with ``generate`` gets
``options.path: {out}/data/<key>.npz`` unless it names a path. Placeholders are substituted
only when a cell runs, so a cell's fingerprint (:attr:`Cell.fingerprint`, which decides
whether a finished cell still matches the spec) does not depend on where folders live.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphdyn.errors import GraphdynError
from graphdyn.training.config import RunConfig, read_yaml, resolve_config_path

SPEC_DIR = Path(__file__).resolve().parent.parent / "configs" / "benchmarks"
#: files of SPEC_DIR that are data, not specs
_NOT_SPECS = {"published"}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_key(value: str, what: str) -> str:
    if not _KEY.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
    return value


class GenerateSpec(_Strict):
    """Molecular dynamics that makes an MD17-format file before the cells run (the code behind
    ``graphdyn simulate molecule``; needs the ``md`` extra). Cached in ``<out>/data/``."""

    molecule: str | None = None  #: an MD17 molecule by name
    smiles: str | None = None
    steps: int = Field(5000, ge=1)
    temperature: float = Field(500.0, ge=0)
    dt: float = Field(0.5, gt=0)  #: fs
    friction: float = Field(0.01, ge=0)  #: 1/fs
    record_every: int = Field(1, ge=1)
    equilibration: int = Field(0, ge=0)
    seed: int = 0

    @field_validator("molecule")
    @classmethod
    def _md17_name(cls, value: str | None) -> str | None:
        from graphdyn.physics.molecule import MD17_SMILES

        if value is not None and value.lower() not in MD17_SMILES:
            raise ValueError(f"unknown MD17 molecule {value!r}; known: {', '.join(MD17_SMILES)} (or give 'smiles')")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "GenerateSpec":
        if (self.molecule is None) == (self.smiles is None):
            raise ValueError("give exactly one of 'molecule' (an MD17 name) or 'smiles'")
        return self


class DatasetSpec(_Strict):
    source: str
    options: dict[str, Any] = Field(default_factory=dict)
    T: int | None = Field(None, ge=1)
    delta: int | None = Field(None, ge=1)
    label: str | None = None
    published: str | None = None
    scale: float | None = Field(None, gt=0)
    units: str | None = None
    generate: GenerateSpec | None = None
    hint: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(_Strict):
    name: str
    key: str | None = None
    label: str | None = None
    published: str | None = None  #: row of the published table (default: the key)
    params: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    only: list[str] | None = None

    @property
    def row(self) -> str:
        return self.key or self.name


class SpecSchema(_Strict):
    name: str | None = None
    description: str = ""
    published: Literal["md17", "adk", "motion"] | None = None
    base: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    jobs: int | None = Field(None, ge=1)
    config: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_entries(cls, v: Any) -> Any:
        return [{"name": m} if isinstance(m, str) else m for m in v] if isinstance(v, list) else v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("datasets")
    @classmethod
    def _dataset_keys(cls, v: dict[str, DatasetSpec]) -> dict[str, DatasetSpec]:
        for key in v:
            _check_key(key, "dataset key")
        return v

    @field_validator("models")
    @classmethod
    def _model_entries(cls, v: list[ModelSpec]) -> list[ModelSpec]:
        rows = [m.row for m in v]
        for row in rows:
            _check_key(row, "model key")
        dup = sorted({r for r in rows if rows.count(r) > 1})
        if dup:
            raise ValueError(f"model {dup[0]!r} is listed twice; give one entry a different 'key'")
        return v


@dataclass(frozen=True)
class Cell:
    """One (dataset, model, seed) training run of a benchmark."""

    dataset: str
    model: str  #: the model row key
    seed: int
    config: dict[str, Any] = field(compare=False)  #: the run config, placeholders unsubstituted

    @property
    def rel_dir(self) -> Path:
        return Path("cells") / self.dataset / self.model / f"seed{self.seed}"

    @property
    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the run config: equal fingerprints train the same run."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.dataset} / {self.model} / seed {self.seed}"


@dataclass
class BenchmarkSpec:
    """A validated spec; :meth:`cells` lists its runs."""

    name: str
    path: Path | None
    schema: SpecSchema
    base: dict[str, Any]

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        return self.schema.datasets

    @property
    def models(self) -> list[ModelSpec]:
        return list(self.schema.models)

    @property
    def seeds(self) -> list[int]:
        return list(self.schema.seeds)

    def model(self, row: str) -> ModelSpec:
        return next(m for m in self.models if m.row == row)

    def runs_on(self, model: ModelSpec, dataset: str) -> bool:
        return model.only is None or dataset in model.only

    def cell_config(self, dataset: str, model: ModelSpec, seed: int) -> dict[str, Any]:
        """The merged run-config dict of one cell (see the module docstring)."""
        ds = self.datasets[dataset]
        cfg = copy.deepcopy(self.base)
        cfg.pop("model", None)
        for key in ("name", "output_dir"):
            cfg.pop(key, None)
        cfg = deep_merge(cfg, self.schema.config)
        data = cfg.setdefault("data", {})
        data["source"] = ds.source
        options = copy.deepcopy(ds.options)
        if ds.generate is not None and "path" not in options:
            options["path"] = f"{{out}}/data/{dataset}.npz"
        data["options"] = options
        if ds.T is not None:
            data["T"] = ds.T
        if ds.delta is not None:
            data["delta"] = ds.delta
        cfg = deep_merge(cfg, ds.config)
        cfg["model"] = deep_merge(cfg.get("model", {}), {"name": model.name, "params": model.params})
        cfg = deep_merge(cfg, model.config)
        cfg = deep_merge(cfg, model.datasets.get(dataset, {}))
        cfg["seed"] = seed
        cfg["name"] = f"{model.row}-{dataset}-seed{seed}"
        return cfg

    def cells(self) -> list[Cell]:
        """Every cell, dataset-major, then model, then seed."""
        out = []
        for dataset in self.datasets:
            for model in self.models:
                if not self.runs_on(model, dataset):
                    continue
                for seed in self.seeds:
                    out.append(Cell(dataset, model.row, seed, self.cell_config(dataset, model, seed)))
        return out

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in (saved in the benchmark folder)."""
        return {"name": self.name, "source": None if self.path is None else str(self.path),
                **self.schema.model_dump(mode="json", exclude={"name"})}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursively for nested mappings (inputs unchanged)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def substitute(value: Any, mapping: dict[str, str]) -> Any:
    """Replace ``{name}`` placeholders in every string of a nested structure."""
    if isinstance(value, str):
        for name, repl in mapping.items():
            value = value.replace("{" + name + "}", repl)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, mapping) for v in value]
    return value


# ---------------------------------------------------------------------------- loading
def builtin_specs() -> list[str]:
    """Names of the benchmark specs shipped with graphdyn."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml") if p.stem not in _NOT_SPECS)


def resolve_spec_path(path_or_name: str | Path) -> Path:
    """A spec file path, or the name of a built-in spec; unknown names list the built-in ones."""
    path = Path(path_or_name)
    if path.exists():
        return path
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1 and path.name not in _NOT_SPECS:
        candidate = SPEC_DIR / f"{path.name}.yaml"
        if candidate.exists():
            return candidate
        raise GraphdynError(f"no benchmark spec file or built-in spec named {path.name!r}; built-in: {', '.join(builtin_specs())}")
    raise GraphdynError("benchmark spec file not found", path=path)


def _error(exc: ValidationError, path: Path | None, prefix: tuple = ()) -> GraphdynError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (*prefix, *err["loc"]))
    if err["type"] == "extra_forbidden":
        return GraphdynError(f"unknown key '{loc}'", path=path, field=loc)
    msg = err["msg"].removeprefix("Value error, ")
    return GraphdynError(msg, path=path, field=loc or None)


def _check_config(fragment: dict[str, Any], where: str, path: Path | None) -> None:
    """Validate a run-config fragment on its own, so an error names where it was written."""
    try:
        RunConfig(**(fragment or {}))
    except ValidationError as exc:
        raise _error(exc, path, (where,)) from None
    except TypeError:
        raise GraphdynError("must be a mapping of run-config sections", path=path, field=where) from None


def parse_spec(raw: dict[str, Any], path: Path | None = None, name: str | None = None) -> BenchmarkSpec:
    """Validate a spec dictionary: keys, model and dataset names, every cell's run config."""
    from graphdyn.data.registry import available_datasets
    from graphdyn.models.registry import resolve_model
    from graphdyn.training.config import parse_config

    if not isinstance(raw, dict):
        raise GraphdynError("a benchmark spec must be a mapping", path=path)
    try:
        schema = SpecSchema(**raw)
    except ValidationError as exc:
        raise _error(exc, path) from None
    base: dict[str, Any] = {}
    if schema.base is not None:
        base_path = resolve_config_path(schema.base)
        if not base_path.exists():
            raise GraphdynError(f"base run config {schema.base!r} not found", path=path, field="base")
        base = read_yaml(base_path)
    _check_config(schema.config, "config", path)
    for key, ds in schema.datasets.items():
        if ds.source not in available_datasets():
            raise GraphdynError(f"unknown dataset {ds.source!r}; available: {', '.join(available_datasets())}", path=path, field=f"datasets.{key}.source")
        _check_config(ds.config, f"datasets.{key}.config", path)
    spec = BenchmarkSpec(name=name or schema.name or (path.stem if path else "benchmark"), path=path, schema=schema, base=base)
    for i, model in enumerate(spec.models):
        where = f"models[{i}]"
        try:
            resolve_model(model.name)
        except GraphdynError as exc:
            raise GraphdynError(exc.problem, path=path, field=f"{where}.name") from None
        _check_config(model.config, f"{where}.config", path)
        for key, over in model.datasets.items():
            if key not in schema.datasets:
                raise GraphdynError(f"unknown dataset key {key!r}; the spec's datasets: {', '.join(schema.datasets)}", path=path, field=f"{where}.datasets")
            _check_config(over, f"{where}.datasets.{key}", path)
        for key in model.only or []:
            if key not in schema.datasets:
                raise GraphdynError(f"unknown dataset key {key!r}; the spec's datasets: {', '.join(schema.datasets)}", path=path, field=f"{where}.only")
    if schema.published is not None:
        from graphdyn.benchmark.published import published_table

        table = published_table(schema.published)
        for key, ds in schema.datasets.items():
            if ds.published is not None and ds.published not in table.columns:
                raise GraphdynError(f"table {schema.published!r} has no column {ds.published!r}; columns: {', '.join(table.columns)}",
                                    path=path, field=f"datasets.{key}.published")
    checked: set[str] = set()
    for cell in spec.cells():
        try:
            parse_config(cell.config)
            model = cell.config["model"]
            key = json.dumps(model, sort_keys=True)
            if key not in checked:
                checked.add(key)
                _check_params(model["name"], model.get("params") or {})
        except GraphdynError as exc:
            raise GraphdynError(f"cell {cell.label}: {exc.problem}", path=path, field=exc.field) from None
    return spec


def _check_params(name: str, params: dict[str, Any]) -> None:
    """Validate model hyper-parameters against the model's ``Params`` class. A model whose
    module is not importable (not written yet) is checked when its cells run instead."""
    from graphdyn.models.registry import _first_error, model_class, resolve_model

    try:
        cls = model_class(name)
    except ImportError:
        return
    _, preset = resolve_model(name)
    try:
        cls.Params(**{**preset, **params})
    except ValidationError as exc:
        raise GraphdynError(_first_error(exc, prefix="model.params"), field="model.params") from None


def load_spec(path_or_name: str | Path) -> BenchmarkSpec:
    """Read and validate a spec file, or a built-in spec by name."""
    path = resolve_spec_path(path_or_name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GraphdynError(f"invalid YAML ({str(exc).splitlines()[0]})", path=path) from None
    except OSError as exc:
        raise GraphdynError(f"cannot read ({exc.strerror})", path=path) from None
    return parse_spec(raw if raw is not None else {}, path=path, name=None)
