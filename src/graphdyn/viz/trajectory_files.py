"""Rollouts as files the field's tools open: multi-frame PDB, DCD and XYZ, through MDAnalysis.

The atoms, names, residues and bonds come from a :class:`~graphdyn.viz.topology.Topology`
(molecules: elements from the atomic numbers; AdK: residue names and ids, backbone atoms N,
CA, C, O; skeletons: joint names; other systems: element ``X``). The file is built as an
MDAnalysis ``Universe`` (``Universe.empty`` + topology attributes + the frames in a
``MemoryReader``) and written with MDAnalysis' own writers, so VMD, PyMOL, ASE and
MDAnalysis read it:

=====  ===============================================================================
pdb    multi-frame (one ``MODEL`` per frame), coordinates to 1e-3 (``%8.3f``, range
       -999.999 .. 9999.999), atom and residue names, elements, ``CONECT`` bonds,
       ``REMARK`` lines saying what the file holds (units, padding, full joint names;
       PDB atom names keep 4 characters)
dcd    binary float32 coordinates and the time between frames, no names: open it with a
       topology (:func:`write_rollout_files` writes a one-frame PDB beside it)
xyz    element (or ``X``) and coordinates to 1e-5 per atom and frame
=====  ===============================================================================

Files are always 3-D: 1-D and 2-D coordinates are padded with zeros (a ``REMARK`` says so).
Lengths are written as the data gives them (angstrom for MD17 and AdK); the tools assume
angstrom. Every file is written to a temporary file in the same folder and renamed, so an
error leaves no partial file and an older file of the same name intact.

Shapes: ``positions [F, N, (C,) D]`` frames of one rollout -> ``A = N * C`` atoms per frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphdyn.errors import GraphdynError
from graphdyn.io import atomic_path
from graphdyn.viz.topology import Topology

#: suffix -> what the file is (the formats ``graphdyn rollout --trajectory`` accepts)
FORMATS = {"pdb": "multi-frame PDB", "dcd": "coordinates only, with a one-frame .pdb topology", "xyz": "XYZ"}
#: Coordinates that fit PDB's ``%8.3f`` columns (MDAnalysis refuses others).
PDB_LIMITS = (-999.9995, 9999.9995)
#: Time units MDAnalysis can be given, in ps (its time unit).
_PS_PER_UNIT = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6, "s": 1e12}


def trajectory_format(path: str | Path, option: str = "--trajectory") -> str:
    """The format of ``path`` from its suffix (``pdb``, ``dcd`` or ``xyz``); else a one-line
    :class:`GraphdynError` naming ``option`` and the allowed formats."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise GraphdynError(
            f"unknown trajectory format {('.' + suffix) if suffix else '(no suffix)'}; use "
            + ", ".join(f".{k} ({v})" for k, v in FORMATS.items()),
            path=path, field=option,
        )
    return suffix


def writable_frames(atoms: np.ndarray, fmt: str) -> tuple[int, str | None]:
    """How many leading frames of ``atoms [F, A, 3]`` ``fmt`` can hold, and why not the next.

    A frame is writable when every coordinate is finite and, for PDB, inside
    :data:`PDB_LIMITS`. Returns ``(n, reason)``; ``reason`` is None when all ``F`` fit.
    """
    finite = np.isfinite(atoms).reshape(len(atoms), -1).all(axis=1)
    ok = finite.copy()
    if fmt == "pdb":
        with np.errstate(invalid="ignore"):
            ok &= ((atoms >= PDB_LIMITS[0]) & (atoms <= PDB_LIMITS[1])).reshape(len(atoms), -1).all(axis=1)
    bad = np.flatnonzero(~ok)
    if len(bad) == 0:
        return len(atoms), None
    first = int(bad[0])
    reason = "non-finite coordinates" if not finite[first] else "coordinates outside PDB's range -999.999 .. 9999.999"
    return first, reason


def time_step_ps(dt: float, unit: str | None) -> float | None:
    """``dt`` in ps (MDAnalysis' time unit), or None when ``unit`` is not a time unit it knows."""
    scale = _PS_PER_UNIT.get((unit or "").strip().lower())
    return None if scale is None else float(dt) * scale


def build_universe(topology: Topology, atoms: np.ndarray, dt_ps: float = 1.0):
    """An MDAnalysis ``Universe`` with ``topology``'s atoms and the frames ``atoms [F, A, 3]``."""
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(topology.n_atoms, n_residues=len(topology.resnames), atom_resindex=topology.atom_resindex,
                           n_segments=1, trajectory=True)
    u.add_TopologyAttr("names", list(topology.names))
    u.add_TopologyAttr("elements", list(topology.elements))
    u.add_TopologyAttr("resnames", list(topology.resnames))
    u.add_TopologyAttr("resids", list(topology.resids))
    u.add_TopologyAttr("segids", ["A"])
    u.add_TopologyAttr("chainIDs", ["A"] * topology.n_atoms)
    u.add_TopologyAttr("record_types", ["ATOM" if topology.kind == "protein" else "HETATM"] * topology.n_atoms)
    u.add_TopologyAttr("bonds", [tuple(int(i) for i in b) for b in topology.bonds])
    u.load_new(np.ascontiguousarray(atoms, dtype=np.float32), format=MemoryReader, dt=dt_ps)
    return u


def write_trajectory(
    path: str | Path,
    positions: np.ndarray,
    topology: Topology,
    *,
    dt_ps: float = 1.0,
    title: str = "graphdyn trajectory",
    remarks: Sequence[str] = (),
) -> Path:
    """Write the frames ``positions [F, N, (C,) D]`` to ``path`` (format from the suffix).

    Raises :class:`GraphdynError` for an unknown suffix, a shape that does not fit
    ``topology``, or a frame the format cannot hold (non-finite; outside PDB's range: cut the
    frames first with :func:`writable_frames`). The file appears only once it is complete.
    """
    path = Path(path)
    fmt = trajectory_format(path, "path")
    atoms = topology.atom_positions(positions)
    if len(atoms) == 0:
        raise GraphdynError("no frames to write", path=path, field="positions")
    n, reason = writable_frames(atoms, fmt)
    if n < len(atoms):
        raise GraphdynError(f"frame {n} has {reason}", path=path, field="positions")
    import MDAnalysis as mda

    u = build_universe(topology, atoms, dt_ps)
    notes = [*remarks, *_standard_remarks(topology)]
    kwargs: dict = {}
    if fmt == "pdb":
        u.trajectory.remarks = notes  # PDBWriter writes the reader's remarks as REMARK records
        kwargs = {"multiframe": True, "bonds": "all", "remarks": title}
    elif fmt == "dcd":
        kwargs = {"dt": dt_ps, "remarks": title[:240]}
    else:
        kwargs = {"remark": title}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The writers warn about attributes a trajectory without a unit cell never has.
        warnings.simplefilter("ignore", UserWarning)
        with mda.Writer(str(tmp), n_atoms=topology.n_atoms, format=fmt.upper(), **kwargs) as writer:
            for _ in u.trajectory:
                writer.write(u.atoms)
    return path


def _standard_remarks(topology: Topology) -> list[str]:
    out = [f"{topology.kind}: {topology.n_nodes} nodes, {topology.n_atoms} atoms; lengths in {_unit_name(topology.length_unit)}"]
    if topology.padded:
        out.append(f"{topology.dim}-D coordinates padded with zeros to 3-D")
    if topology.kind == "skeleton":
        out.append("joints (atom serial: name): " + ", ".join(f"{i + 1} {name}" for i, name in enumerate(topology.names)))
    return out


def _unit_name(unit: str | None) -> str:
    """``"fs"`` stays; ``"reduced"`` -> ``"reduced units"``; None -> ``"data units"``."""
    return "data units" if not unit else (f"{unit} units" if unit == "reduced" else unit)


@dataclass(frozen=True)
class WrittenFile:
    """One file :func:`write_rollout_files` wrote: what it holds and, when cut short, why."""

    path: Path
    role: str  # "prediction", "truth" or "topology"
    frames: int
    note: str | None = None

    def describe(self) -> str:
        line = f"wrote {self.path}: {self.role}, {self.frames} frame{'s' if self.frames != 1 else ''}"
        return f"{line} ({self.note})" if self.note else line


def truth_path(path: Path) -> Path:
    """Where the truth beside ``path`` goes: ``traj.pdb`` -> ``traj_true.pdb``."""
    return path.with_name(f"{path.stem}_true{path.suffix}")


def write_rollout_files(
    paths: Sequence[str | Path],
    pred: np.ndarray,
    topology: Topology,
    *,
    true: np.ndarray | None = None,
    frame_dt: float = 1.0,
    time_unit: str | None = None,
    stride: int = 1,
    source: str = "",
) -> list[WrittenFile]:
    """Write one rollout's prediction (and the truth) to every path of ``paths``.

    Args:
        paths: output files; the format comes from each suffix (checked before anything is
            written). ``traj.dcd`` gets its topology as ``traj.pdb`` (one frame) unless
            ``traj.pdb`` is asked for too.
        pred: ``[F, N, (C,) D]`` frames ``0 .. steps`` of the rollout, frame 0 the last
            observed state.
        true: the truth, same shape, written beside each file as ``<stem>_true<suffix>``.
        frame_dt: time between rollout frames (``dt * delta``) in ``time_unit``.
        stride: keep every ``stride``-th frame.
        source: what the truth is (for the files' titles), e.g. ``"recorded frames"``.

    A prediction that becomes non-finite (or, in a PDB, leaves its coordinate range) is
    written up to the frame before; the returned record says from which rollout stride.
    """
    paths = list(dict.fromkeys(Path(p) for p in paths))
    formats = [trajectory_format(p) for p in paths]
    if stride < 1:
        raise GraphdynError(f"must be at least 1, got {stride}", field="stride")
    keep = np.arange(0, len(pred), stride)
    dt = frame_dt * stride
    dt_ps = time_step_ps(dt, time_unit)
    timing = (f"{dt:g} {_unit_name(time_unit)} between frames (rollout strides 0, {stride}, {2 * stride}, ...; "
              "frame 0 is the last observed state)")
    series = [("prediction", pred)] + ([("truth", true)] if true is not None else [])
    written: list[WrittenFile] = []
    for path, fmt in zip(paths, formats):
        for role, frames in series:
            out = path if role == "prediction" else truth_path(path)
            frames = np.asarray(frames)
            first_bad, reason = writable_frames(topology.atom_positions(frames), fmt)
            kept = keep[keep < first_bad]
            if len(kept) == 0:
                raise GraphdynError(f"the first frame has {reason}", path=out, field="positions")
            note = None if reason is None else f"{reason} from rollout stride {first_bad} on; the file stops before it"
            title = f"graphdyn rollout: {role}" + (f" ({source})" if role == "truth" and source else "")
            write_trajectory(out, frames[kept], topology, dt_ps=dt_ps if dt_ps is not None else dt, title=title, remarks=[timing])
            written.append(WrittenFile(out, role, len(kept), note))
        if fmt == "dcd" and path.with_suffix(".pdb") not in paths:
            top = path.with_suffix(".pdb")
            write_trajectory(top, np.asarray(pred)[:1], topology, title=f"graphdyn rollout: topology of {path.name}")
            written.append(WrittenFile(top, "topology", 1, f"open {path.name} with it, e.g. `vmd {top.name} {path.name}`"))
    return written
