"""``graphdyn data info``: summarise any data file graphdyn reads.

Recognised files:

* a graphdyn trajectory ``.npz`` (field ``format`` = ``graphdyn.trajectory``): runs, frames,
  nodes, edges, time step, units, metadata, checksum;
* an MD17 / sGDML ``.npz`` (keys ``R``, ``z``): atoms, formula, and what the paper's
  preparation makes of it (nodes, edges, split pools); revised MD17 is recognised and
  explained;
* a topology MDAnalysis parses (``.psf``, ``.pdb``, ``.gro``, ...): atoms, residues, the
  backbone nodes the ``adk`` dataset would use, charges, and CA contacts when it holds
  coordinates;
* a trajectory MDAnalysis reads alone (``.dcd``, ``.xtc``, ``.trr``, ...): atoms, frames,
  time step;
* ``.asf`` / ``.amc`` motion capture, through ``graphdyn.data.asf_amc.describe_file`` when
  that module is installed (it belongs to the mocap dataset).

:func:`describe_file` returns a JSON-serialisable dict; :func:`format_description` turns it
into indented ``key: value`` lines.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from graphdyn.errors import GraphdynError

_LIST_SHOWN = 8


def describe_file(path: str | Path) -> dict[str, Any]:
    """A summary of ``path``; raises :class:`GraphdynError` for unreadable or unknown files."""
    path = Path(path)
    if not path.exists():
        raise GraphdynError("file not found", path=path)
    if path.is_dir():
        raise GraphdynError("is a folder; give one data file", path=path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _describe_npz(path)
    if suffix in (".asf", ".amc"):
        return _describe_motion(path)
    return _describe_mdanalysis(path)


def _describe_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise GraphdynError("a single array, not an .npz archive", path=path)
            keys = list(npz.files)
            fmt = str(npz["format"]) if "format" in keys else None
    except GraphdynError:
        raise
    except Exception as exc:
        raise GraphdynError(f"not a readable .npz file ({exc.__class__.__name__}: {exc})", path=path) from None
    if fmt == "graphdyn.trajectory":
        from graphdyn.data.trajectory import Trajectory

        traj = Trajectory.load(path)
        return {"format": "graphdyn trajectory", "file": str(path), **traj.describe()}
    if "R" in keys and "z" in keys:
        from graphdyn.data.md17 import describe_md17

        return describe_md17(path)
    if {"coords", "nuclear_charges"} <= set(keys):
        with np.load(path, allow_pickle=False) as npz:
            shape = npz["coords"].shape
        return {
            "format": "revised MD17 (rMD17)",
            "file": str(path),
            "frames": int(shape[0]),
            "atoms": int(shape[1]) if len(shape) > 1 else None,
            "note": "frames are independent samples, not a trajectory: the md17 dataset needs the original MD17 file",
        }
    raise GraphdynError(
        f"unrecognised .npz (keys: {', '.join(keys) or 'none'}); expected a graphdyn trajectory "
        "(field 'format') or an MD17 file (keys 'R' and 'z')",
        path=path,
    )


def _describe_motion(path: Path) -> dict[str, Any]:
    # The ASF/AMC reader belongs to the mocap dataset; it is used when present.
    try:
        from graphdyn.data import asf_amc
    except ImportError:
        raise GraphdynError("ASF/AMC support (graphdyn.data.asf_amc) is not available in this installation", path=path) from None
    describe = getattr(asf_amc, "describe_file", None)
    if describe is None:
        raise GraphdynError("graphdyn.data.asf_amc has no describe_file(path) to summarise it", path=path)
    return describe(path)


def _describe_mdanalysis(path: Path) -> dict[str, Any]:
    import MDAnalysis as mda

    fmt = path.suffix.lstrip(".").upper()
    if fmt in mda._PARSERS:
        return _describe_topology(path)
    if fmt in mda._READERS:
        return _describe_trajectory(path)
    raise GraphdynError(
        f"unsupported file type '{path.suffix}'; graphdyn reads .npz (graphdyn trajectory, MD17), "
        ".asf/.amc, and the topology and trajectory formats of MDAnalysis",
        path=path,
    )


def _describe_topology(path: Path) -> dict[str, Any]:
    import MDAnalysis as mda

    from graphdyn.data.adk import CONTACT_CUTOFF, backbone_indices, contact_graph

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = mda.Universe(str(path))
    except Exception as exc:
        raise GraphdynError(f"MDAnalysis cannot read it ({exc.__class__.__name__}: {' '.join(str(exc).split())})", path=path) from None
    idx, kept, skipped = backbone_indices(u)
    out: dict[str, Any] = {
        "format": f"topology ({path.suffix.lstrip('.').upper()}, via MDAnalysis)",
        "file": str(path),
        "atoms": len(u.atoms),
        "residues": len(u.residues),
        "backbone nodes (residues with N, CA, C, O)": len(idx),
        "residues without a full backbone": skipped,
        "partial charges": hasattr(u.atoms, "charges"),
    }
    try:
        n_frames = len(u.trajectory)
    except AttributeError:
        n_frames = 0
    out["frames"] = n_frames
    if n_frames and len(idx):
        ca = u.atoms.positions[idx[:, 1]]
        edge_index, _ = contact_graph(ca, CONTACT_CUTOFF)
        out[f"CA contacts < {CONTACT_CUTOFF:g} A (directed edges, first frame)"] = int(edge_index.shape[1])
    return out


def _describe_trajectory(path: Path) -> dict[str, Any]:
    from MDAnalysis.coordinates.core import reader

    from graphdyn.data.adk import _check_dcd_complete, _quiet_reader_cleanup

    _check_dcd_complete(str(path))
    error = None
    with _quiet_reader_cleanup():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = reader(str(path))
                n_atoms, n_frames, dt = r.n_atoms, r.n_frames, float(r.dt)
                r.close()
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"
    if error is not None:
        raise GraphdynError(f"MDAnalysis cannot read it ({error})", path=path)
    return {
        "format": f"trajectory ({path.suffix.lstrip('.').upper()}, via MDAnalysis)",
        "file": str(path),
        "atoms": n_atoms,
        "frames": n_frames,
        "dt": f"{dt:g} ps",
        "duration": f"{dt * max(n_frames - 1, 0):g} ps",
        "note": "nodes and edges need a topology: use data.options.topology with the adk dataset",
    }


def format_description(desc: dict[str, Any], indent: int = 0) -> str:
    """Indented ``key: value`` lines; nested dicts indent by two spaces, long lists are cut."""
    lines = []
    pad = "  " * indent
    for key, value in desc.items():
        if isinstance(value, dict):
            if value:
                lines.append(f"{pad}{key}:")
                lines.append(format_description(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: (none)")
        else:
            lines.append(f"{pad}{key}: {_format_value(value)}")
    return "\n".join(lines)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "(none)"
        shown = ", ".join(_format_value(v) for v in value[:_LIST_SHOWN])
        return shown + (f", ... ({len(value)} in all)" if len(value) > _LIST_SHOWN else "")
    if value is None:
        return "-"
    return str(value)
