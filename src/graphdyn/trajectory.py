"""The one trajectory type of graphdyn, and its documented ``.npz`` format.

A :class:`Trajectory` holds one or more *runs* of the same system: same nodes, same fixed
edge list, same time step. Simulators produce many runs at once (one per random initial
condition); a molecular-dynamics file is one run.

Shapes (``R`` runs, ``F`` frames, ``N`` nodes, ``C`` coordinate channels, ``D`` dimensions)::

    positions   [R, F, N, D]  or  [R, F, N, C, D]   (D in 1, 2, 3; C e.g. 4 backbone atoms)
    velocities  same as positions, optional
    forces      same as positions, optional
    energy      [R, F], optional (total energy per frame)
    node_attr   [N, A]   static scalar node features (atomic number, charge, mass, ...)
    edge_index  [2, E]   int64; row 0 is the receiving node i, row 1 the sending node j:
                         message m_ij travels j -> i, relative vectors are x_i - x_j
    edge_attr   [E, K], optional
    dt          float, time between consecutive frames, in ``units["time"]``

A 4-D ``positions`` array is always single-channel ``[R, F, N, D]``; multi-channel data is
5-D. ``units`` and ``metadata`` are free JSON dictionaries: the data carries its own
constants (spring constants, masses, source file, checksum...) so nothing is hard-coded
twice.

File format (``numpy.savez_compressed``)::

    format        "graphdyn.trajectory"      format_version  1
    positions     float array as above        dt              float scalar
    node_attr     [N, A]                      edge_index      [2, E] int
    velocities / forces / energy / edge_attr  only when present
    units         JSON string                 metadata        JSON string

:meth:`Trajectory.load` validates every field and raises :class:`GraphdynError` naming the
file, the field and the problem.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from graphdyn.errors import GraphdynError
from graphdyn.io import save_npz

FORMAT = "graphdyn.trajectory"
FORMAT_VERSION = 1
_PER_FRAME_VECTORS = ("velocities", "forces")


@dataclass
class Trajectory:
    """One or more runs of one system; see the module docstring for shapes."""

    positions: np.ndarray
    edge_index: np.ndarray
    dt: float
    node_attr: np.ndarray | None = None
    velocities: np.ndarray | None = None
    forces: np.ndarray | None = None
    energy: np.ndarray | None = None
    edge_attr: np.ndarray | None = None
    units: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions)
        if self.node_attr is None and self.positions.ndim >= 4:
            self.node_attr = np.ones((self.positions.shape[2], 1), dtype=self.positions.dtype)
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(cls, positions: np.ndarray, *, multichannel: bool = False, **kwargs: Any) -> "Trajectory":
        """Build a one-run trajectory from ``[F, N, D]`` (or ``[F, N, C, D]`` with ``multichannel``).

        Per-frame arrays given in ``kwargs`` (velocities, forces, energy) get the run axis too.
        """
        positions = np.asarray(positions)
        expected = 4 if multichannel else 3
        if positions.ndim != expected:
            raise GraphdynError(
                f"expected {expected} axes ({'F, N, C, D' if multichannel else 'F, N, D'}), got shape {positions.shape}",
                field="positions",
            )
        for key in (*_PER_FRAME_VECTORS, "energy"):
            if kwargs.get(key) is not None:
                kwargs[key] = np.asarray(kwargs[key])[None]
        return cls(positions=positions[None], **kwargs)

    # ------------------------------------------------------------------ shape helpers
    @property
    def n_runs(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[1])

    @property
    def n_nodes(self) -> int:
        return int(self.positions.shape[2])

    @property
    def n_channels(self) -> int | None:
        """Coordinate channels per node, or None for single-channel data."""
        return int(self.positions.shape[3]) if self.positions.ndim == 5 else None

    @property
    def dim(self) -> int:
        return int(self.positions.shape[-1])

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def node_shape(self) -> tuple[int, ...]:
        """Shape of one node's coordinates: ``(D,)`` or ``(C, D)``."""
        return tuple(self.positions.shape[3:])

    # ------------------------------------------------------------------ validation
    def validate(self, path: str | Path | None = None) -> None:
        """Check shapes, dtypes and values; raise :class:`GraphdynError` on the first problem."""

        def fail(fieldname: str, problem: str) -> None:
            raise GraphdynError(problem, path=path, field=fieldname)

        pos = self.positions
        if pos.ndim not in (4, 5):
            fail("positions", f"expected shape [runs, frames, nodes, dim] or [runs, frames, nodes, channels, dim], got {pos.shape}")
        if not np.issubdtype(pos.dtype, np.floating):
            fail("positions", f"expected a float array, got dtype {pos.dtype}")
        runs, frames, nodes = pos.shape[:3]
        if runs < 1 or frames < 1 or nodes < 1:
            fail("positions", f"empty axis in shape {pos.shape}")
        if pos.shape[-1] not in (1, 2, 3):
            fail("positions", f"last axis must be 1, 2 or 3 spatial dimensions, got {pos.shape[-1]}")
        _check_finite(pos, "positions", fail)
        for name in _PER_FRAME_VECTORS:
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr)
                setattr(self, name, arr)
                if arr.shape != pos.shape:
                    fail(name, f"shape {arr.shape} does not match positions {pos.shape}")
                _check_finite(arr, name, fail)
        if self.energy is not None:
            self.energy = np.asarray(self.energy)
            if self.energy.shape != (runs, frames):
                fail("energy", f"expected shape (runs, frames) = {(runs, frames)}, got {self.energy.shape}")
            _check_finite(self.energy, "energy", fail)

        self.node_attr = np.asarray(self.node_attr)
        if self.node_attr.ndim == 1:
            self.node_attr = self.node_attr[:, None]
        if self.node_attr.ndim != 2 or self.node_attr.shape[0] != nodes:
            fail("node_attr", f"expected shape [nodes={nodes}, attrs], got {self.node_attr.shape}")
        _check_finite(self.node_attr, "node_attr", fail)

        ei = np.asarray(self.edge_index)
        if ei.ndim != 2 or ei.shape[0] != 2:
            fail("edge_index", f"expected shape [2, edges], got {ei.shape}")
        if ei.size and not np.issubdtype(ei.dtype, np.integer):
            fail("edge_index", f"expected integer node indices, got dtype {ei.dtype}")
        self.edge_index = ei.astype(np.int64)
        if ei.size and (ei.min() < 0 or ei.max() >= nodes):
            fail("edge_index", f"node index out of range [0, {nodes}): min {ei.min()}, max {ei.max()}")
        if self.edge_attr is not None:
            self.edge_attr = np.asarray(self.edge_attr)
            if self.edge_attr.ndim == 1:
                self.edge_attr = self.edge_attr[:, None]
            if self.edge_attr.shape[0] != ei.shape[1]:
                fail("edge_attr", f"expected {ei.shape[1]} rows (one per edge), got shape {self.edge_attr.shape}")
        try:
            self.dt = float(self.dt)
        except (TypeError, ValueError):
            fail("dt", f"expected a number, got {self.dt!r}")
        if not np.isfinite(self.dt) or self.dt <= 0:
            fail("dt", f"time step must be positive and finite, got {self.dt}")
        if not isinstance(self.units, dict):
            fail("units", "expected a dictionary")
        if not isinstance(self.metadata, dict):
            fail("metadata", "expected a dictionary")

    # ------------------------------------------------------------------ selection
    def select_runs(self, runs: np.ndarray | slice | list[int]) -> "Trajectory":
        """A trajectory holding only the given runs (views where numpy allows)."""
        return self._map_per_frame(lambda a: a[runs])

    def select_frames(self, frames: np.ndarray | slice | list[int]) -> "Trajectory":
        """A trajectory holding only the given frames of every run (``dt`` unchanged)."""
        return self._map_per_frame(lambda a: a[:, frames])

    def _map_per_frame(self, fn) -> "Trajectory":
        kw = {name: (None if getattr(self, name) is None else fn(getattr(self, name)))
              for name in ("positions", *_PER_FRAME_VECTORS, "energy")}
        return replace(self, **kw)

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (shapes, time step, units, metadata, checksum)."""
        return {
            "runs": self.n_runs,
            "frames": self.n_frames,
            "nodes": self.n_nodes,
            "channels": self.n_channels,
            "dim": self.dim,
            "edges": self.n_edges,
            "node_attr_dim": int(self.node_attr.shape[1]),
            "dt": self.dt,
            "has_velocities": self.velocities is not None,
            "has_energy": self.energy is not None,
            "units": dict(self.units),
            "metadata": dict(self.metadata),
            "checksum": self.checksum(),
        }

    def checksum(self) -> str:
        """SHA-256 (first 16 hex digits) of the arrays that define the data."""
        h = hashlib.sha256()
        for arr in (self.positions, self.velocities, self.node_attr, self.edge_index):
            if arr is not None:
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(repr(self.dt).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ file format
    def save(self, path: str | Path) -> Path:
        """Write the documented ``.npz`` atomically; returns the path."""
        path = Path(path)
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION),
            "positions": self.positions,
            "dt": np.array(self.dt),
            "node_attr": self.node_attr,
            "edge_index": self.edge_index,
            "units": np.array(json.dumps(self.units)),
            "metadata": np.array(json.dumps(self.metadata, default=_json_safe)),
        }
        for name in (*_PER_FRAME_VECTORS, "energy", "edge_attr"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        save_npz(path, arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        """Read and validate a trajectory ``.npz``; errors name the file and the field."""
        path = Path(path)
        if not path.exists():
            raise GraphdynError("file not found", path=path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise GraphdynError(f"not a readable .npz file ({exc.__class__.__name__}: {exc})", path=path) from None
        fmt = str(data.get("format", ""))
        if fmt != FORMAT:
            raise GraphdynError(
                f"not a graphdyn trajectory (field 'format' is {fmt!r}, expected {FORMAT!r}); "
                "MD17 and other formats are read by their dataset modules",
                path=path,
            )
        version = int(data.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise GraphdynError(f"format_version {version} is newer than this graphdyn reads ({FORMAT_VERSION})", path=path)
        for key in ("positions", "dt", "edge_index"):
            if key not in data:
                raise GraphdynError("missing required field", path=path, field=key)
        kwargs: dict[str, Any] = {k: data[k] for k in ("positions", "edge_index", *_PER_FRAME_VECTORS, "energy", "edge_attr", "node_attr") if k in data}
        for key in ("units", "metadata"):
            try:
                kwargs[key] = json.loads(str(data[key])) if key in data else {}
            except json.JSONDecodeError as exc:
                raise GraphdynError(f"invalid JSON ({exc})", path=path, field=key) from None
        kwargs["dt"] = data["dt"].item() if data["dt"].shape == () else data["dt"]
        traj = cls.__new__(cls)
        for name, default in (("node_attr", None), ("velocities", None), ("forces", None), ("energy", None), ("edge_attr", None)):
            setattr(traj, name, kwargs.pop(name, default))
        for name, value in kwargs.items():
            setattr(traj, name, value)
        traj.positions = np.asarray(traj.positions)
        if traj.node_attr is None and traj.positions.ndim >= 4:
            traj.node_attr = np.ones((traj.positions.shape[2], 1), dtype=traj.positions.dtype)
        elif traj.node_attr is None:
            traj.node_attr = np.ones((0, 1))
        traj.validate(path=path)
        return traj


def _check_finite(arr: np.ndarray, name: str, fail) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        fail(name, f"contains NaN or infinite values (first at index {tuple(int(i) for i in bad)})")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
