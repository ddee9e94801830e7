"""Adenylate kinase (AdK) backbone dynamics, prepared as in ESTAG (spec section 3.2).

Any topology + trajectory pair that MDAnalysis reads. Each node is one protein residue
with a full backbone, exactly one atom named each of N, CA, C, O (the C-terminal residue,
whose oxygens are OT1/OT2, drops out: 213 of AdK's 214 residues). Its coordinates are the
4 x 3 block of those atoms, so positions are multi-channel ``[R, F, N, 4, 3]`` (angstrom).

* Node attributes ``[N, 4]``: the partial charges of N, CA, C, O from the topology; a
  topology without charges gives ones (``metadata["node_attr_source"]`` says which).
* Edges: CA-CA pairs closer than 6 angstrom at frame 0 of the first run, both directions,
  no self-loops; edge attribute ``[E, 1]`` = that frame-0 distance.
* Windows: ``T = 10`` frames spaced ``delta = 5`` apart (target ``s + 50``).
* Split: chronological, per run: of the ``n = F - T*delta`` start positions, the first
  ``int(0.6 n)`` train, the next ``int(0.2 n)`` val, the next ``int(0.2 n)`` test (the paper's
  4187-frame run: 2482 / 827 / 827).
* ``dt`` from the trajectory (ps), or the ``dt`` option.

**Files.** The paper used MDAnalysisData's ``adk_equilibrium`` (``adk4AKE.psf`` +
``1ake_007-nowater-core-dt240ps.dcd``, 4187 frames every 240 ps): point ``topology`` and
``trajectory`` at them. With neither option set, the real AdK files shipped by
MDAnalysisTests are used: ``adk.psf`` with the two DIMS transition runs ``adk_dims.dcd``
(98 frames) and ``adk_dims2.dcd`` (102 frames), as two separate runs cut to the shorter
length. They are short closed-to-open transition runs, *not* the paper's equilibrium run.
The third shipped run (``adk_gbis_tmd-fast1_NAMD.dcd``) has another time step (0.01 ps vs
1 ps) and is not mixed in; pass it with ``adk_closed_NAMD.psf`` to use it.

Several trajectory files are separate runs (``join: runs``, cut to the shortest; they must
share the time step) or one continuous run read in order (``join: time``, as MDAnalysis
chains them).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from graphdyn.data.cache import cache_key, data_dir, file_sha256, load_or_build
from graphdyn.data.registry import SPLIT_NAMES, DataSplits, Fractions, Options, Window, parse_options, window_summary
from graphdyn.data.trajectory import Trajectory
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError

PREP_VERSION = 1
PAPER_T = 10
PAPER_DELTA = 5
PAPER_FRACTIONS = (0.6, 0.2, 0.2)
CONTACT_CUTOFF = 6.0
BACKBONE = ("N", "CA", "C", "O")
SHIPPED_NOTE = (
    "MDAnalysisTests' AdK DIMS transition runs (adk_dims.dcd, adk_dims2.dcd, ~100 frames each), "
    "not the paper's 4187-frame equilibrium run (MDAnalysisData adk_equilibrium)"
)


class AdkOptions(Options):
    """``data.options`` of the ``adk`` dataset (all optional; none = the shipped test files)."""

    topology: str | None = None
    trajectory: str | list[str] | None = None
    join: Literal["runs", "time"] = "runs"
    cutoff: float = Field(default=CONTACT_CUTOFF, gt=0, description="CA-CA contact cutoff (angstrom)")
    fractions: Fractions = PAPER_FRACTIONS
    dt: float | None = Field(default=None, gt=0, description="frame spacing in ps; default the trajectory's")
    data_dir: str | None = None
    cache: bool = True

    @model_validator(mode="after")
    def _topology_with_trajectory(self) -> "AdkOptions":
        if self.trajectory is not None and self.topology is None:
            raise ValueError("'trajectory' needs 'topology' (the file naming the atoms)")
        return self


def shipped_files() -> tuple[str, list[str]]:
    """The real AdK topology and DIMS trajectories shipped with MDAnalysisTests."""
    try:
        from MDAnalysisTests.datafiles import DCD, DCD2, PSF
    except ImportError:
        raise GraphdynError(
            "no AdK files given and MDAnalysisTests (which ships short AdK runs) is not installed; "
            "set data.options.topology and data.options.trajectory, e.g. MDAnalysisData's adk_equilibrium "
            "files adk4AKE.psf and 1ake_007-nowater-core-dt240ps.dcd",
            field="data.options.topology",
        ) from None
    return PSF, [DCD, DCD2]


# ---------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _quiet_reader_cleanup():
    """Silence the traceback MDAnalysis prints when a reader that failed to open is freed.

    A DCD reader whose header cannot be read raises in ``__init__`` and then fails again in
    ``__del__`` (no ``_file``); Python reports that second error on stderr, which would break
    the one-line error report. The collection runs inside the block so the hook sees it.
    """
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        source = str(getattr(unraisable.object, "__module__", ""))
        if not (isinstance(unraisable.exc_value, AttributeError) and source.startswith("MDAnalysis")):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _universe(topology: str, trajectory: str | list[str] | None):
    """An MDAnalysis Universe, with MDAnalysis' problems turned into one-line errors."""
    import MDAnalysis as mda

    files = [topology] + ([] if trajectory is None else ([trajectory] if isinstance(trajectory, str) else list(trajectory)))
    for f in files:
        if not Path(f).is_file():
            raise GraphdynError("file not found", path=f)
    for f in files[1:]:
        _check_dcd_complete(f)
    where = " + ".join(files)
    error = None
    with _quiet_reader_cleanup():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                u = mda.Universe(topology, *([] if trajectory is None else [trajectory]))
                dt = float(u.trajectory.dt)
        except Exception as exc:  # MDAnalysis raises many types (ValueError, OSError, TypeError, ...)
            # Keep only the text: the traceback would keep a half-built reader alive.
            error = (exc.__class__.__name__, " ".join(str(exc).split()))
    if error is not None:
        name, msg = error
        if "number of atoms" in msg.lower():
            problem = f"trajectory atom count does not match the topology ({msg})"
        else:
            problem = f"MDAnalysis cannot read it ({name}: {msg})"
        raise GraphdynError(problem, path=where)
    no_dt = any("dt information" in str(w.message) for w in caught)
    return u, dt, no_dt


def _check_dcd_complete(path: str) -> None:
    """Reject a DCD whose size is not a whole number of frames (a truncated copy).

    MDAnalysis derives the frame count from the file size and silently drops a partial
    last frame; the sizes it exposes let us see it. Other formats are left to MDAnalysis.
    """
    if not str(path).lower().endswith(".dcd"):
        return
    from MDAnalysis.coordinates.core import reader

    with _quiet_reader_cleanup():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = reader(path)
            f = r._file
            header, first, frame = int(f._header_size), int(f._firstframesize), int(f._framesize)
            r.close()
        except Exception:
            return  # unreadable headers are reported by the Universe that follows
    size = os.path.getsize(path)
    if size > header and frame > 0 and (size - header - first) % frame != 0:
        whole = (size - header - first) // frame + 1
        raise GraphdynError(f"truncated DCD: the file ends partway through a frame, after {whole} complete frames", path=path)


def backbone_indices(universe) -> tuple[np.ndarray, list[str], list[str]]:
    """Atom indices ``[N, 4]`` (rows N, CA, C, O) of residues with a full backbone.

    A residue counts when the protein selection holds exactly one atom of each name.

    Returns:
        ``(indices [N, 4] int64, kept residue labels, skipped residue labels)``, labels like
        ``"GLY214"``.
    """
    rows, kept, skipped = [], [], []
    for res in universe.select_atoms("protein").residues:
        names = res.atoms.names
        row = []
        for name in BACKBONE:
            hit = np.flatnonzero(names == name)
            if len(hit) != 1:
                break
            row.append(int(res.atoms.indices[hit[0]]))
        label = f"{res.resname}{res.resid}"
        if len(row) == len(BACKBONE):
            rows.append(row)
            kept.append(label)
        else:
            skipped.append(label)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4), kept, skipped


def contact_graph(ca: np.ndarray, cutoff: float = CONTACT_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """CA-CA contact edges.

    Args:
        ca: [N, 3] CA positions of the frame the graph is built from.
        cutoff: pairs with ``||ca_i - ca_j|| < cutoff`` are joined, ``i != j``.

    Returns:
        ``edge_index`` [2, E] int64 (row 0 receiver i, sorted by (i, j); both directions)
        and ``edge_attr`` [E, 1] float64 distances.
    """
    ca = np.asarray(ca, dtype=np.float64)
    dist = np.linalg.norm(ca[:, None, :] - ca[None, :, :], axis=-1)
    adj = (dist < cutoff) & ~np.eye(len(ca), dtype=bool)
    i, j = np.nonzero(adj)
    return np.stack([i, j]).astype(np.int64), dist[i, j][:, None]


def _read_positions(u, idx: np.ndarray, where: str) -> np.ndarray:
    """Backbone positions ``[F, N, 4, 3]`` float32 of every frame of ``u``."""
    n_frames = len(u.trajectory)
    out = np.empty((n_frames, idx.shape[0], 4, 3), dtype=np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f, ts in enumerate(u.trajectory):
                out[f] = ts.positions[idx]
    except Exception as exc:
        raise GraphdynError(f"reading frame {f} failed ({exc.__class__.__name__}: {exc})", path=where) from None
    finite = np.isfinite(out)
    if not finite.all():
        frame, node, chan = (int(v) for v in np.argwhere(~finite)[0][:3])
        raise GraphdynError(f"NaN or infinite coordinates (first at frame {frame}, node {node}, atom {BACKBONE[chan]})", path=where)
    return out


def read_adk(topology: str, trajectories: list[str] | None, join: str = "runs") -> dict[str, Any]:
    """Read backbone coordinates and charges.

    Returns a dict with ``positions`` [R, F, N, 4, 3] float32 (runs cut to the shortest),
    ``charges`` [N, 4] or None, ``dt`` (ps, per run), ``no_dt`` (a reader had no time
    step and MDAnalysis assumed 1 ps), ``frames_per_run``, ``residues`` and ``skipped``.
    """
    if trajectories is None:
        groups: list[str | list[str] | None] = [None]
    elif join == "time" or len(trajectories) == 1:
        groups = [trajectories if len(trajectories) > 1 else trajectories[0]]
    else:
        groups = list(trajectories)
    runs, dts, no_dt = [], [], False
    idx = kept = skipped = charges = None
    for group in groups:
        u, dt, missing_dt = _universe(topology, group)
        where = topology if group is None else (" + ".join(group) if isinstance(group, list) else group)
        if idx is None:
            idx, kept, skipped = backbone_indices(u)
            if len(idx) == 0:
                raise GraphdynError("no protein residue with a full N, CA, C, O backbone", path=topology)
            charges = np.asarray(u.atoms.charges, dtype=np.float64)[idx] if hasattr(u.atoms, "charges") else None
        runs.append(_read_positions(u, idx, where))
        dts.append(dt)
        no_dt = no_dt or missing_dt
    frames = [r.shape[0] for r in runs]
    n = min(frames)
    return {
        "positions": np.stack([r[:n] for r in runs]),
        "charges": charges,
        "dt": dts,
        "no_dt": no_dt,
        "frames_per_run": frames,
        "residues": kept,
        "skipped": skipped,
    }


def chronological_starts(n_frames: int, n_runs: int, span: int, fractions: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Chronological split of each run's ``n = n_frames - span`` start positions.

    Train takes starts ``[0, a)``, val ``[a, b)``, test ``[b, c)`` with ``a = int(f0 n)``,
    ``b = a + int(f1 n)``, ``c = b + int(f2 n)``, in every run.

    Returns:
        ``{split: [S, 2] int64 (run, start)}``; empty arrays when ``n`` is too small.
    """
    n = max(n_frames - span, 0)
    bounds = np.cumsum([0] + [int(f * n) for f in fractions])
    out = {}
    for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:]):
        s = np.arange(lo, hi, dtype=np.int64)
        out[name] = np.stack(np.meshgrid(np.arange(n_runs), s, indexing="ij"), -1).reshape(-1, 2)
    return out


# ---------------------------------------------------------------------------- builder
def resolve_files(opts: AdkOptions) -> tuple[str, list[str] | None, bool]:
    """``(topology, trajectories or None, shipped)`` for the options."""
    if opts.topology is None:
        top, trajs = shipped_files()
        return top, trajs, True
    trajs = None if opts.trajectory is None else ([opts.trajectory] if isinstance(opts.trajectory, str) else list(opts.trajectory))
    if trajs is not None and not trajs:
        raise GraphdynError("empty list of trajectory files", field="data.options.trajectory")
    top = str(Path(opts.topology).expanduser())
    return top, None if trajs is None else [str(Path(t).expanduser()) for t in trajs], False


def load_prepared(opts: AdkOptions) -> tuple[Trajectory, str]:
    """Read, prepare and cache the AdK trajectory for ``opts``; returns it and the cache status."""
    topology, trajectories, shipped = resolve_files(opts)
    files = [topology, *(trajectories or [])]
    for f in files:
        if not Path(f).is_file():
            raise GraphdynError("file not found", path=f)
    sources = {"topology": file_sha256(topology)}
    sources.update({f"trajectory[{k}]": file_sha256(t) for k, t in enumerate(trajectories or [])})
    prep = {"join": opts.join, "cutoff": opts.cutoff, "dt": opts.dt}
    key = cache_key("adk", PREP_VERSION, sources, prep)

    def build() -> Trajectory:
        raw = read_adk(topology, trajectories, opts.join)
        where = " + ".join(files)
        if opts.dt is not None:
            dt, dt_source = opts.dt, "option"
        else:
            dts = raw["dt"]
            if max(dts) - min(dts) > 1e-6 * max(dts):
                raise GraphdynError(
                    f"the runs have different time steps ({', '.join(f'{d:g}' for d in dts)} ps); "
                    "use files of one simulation, join: time, or set data.options.dt",
                    path=where,
                )
            dt = dts[0]
            dt_source = "assumed 1 ps by MDAnalysis (no time step in the file)" if raw["no_dt"] else "trajectory"
        pos = raw["positions"]
        edge_index, edge_attr = contact_graph(pos[0, 0, :, 1], opts.cutoff)
        if raw["charges"] is not None:
            node_attr, attr_source = raw["charges"], "topology partial charges of N, CA, C, O"
        else:
            node_attr, attr_source = np.ones((pos.shape[2], 4)), "ones (the topology has no partial charges)"
        return Trajectory(
            positions=pos,
            edge_index=edge_index,
            edge_attr=edge_attr,
            node_attr=node_attr,
            dt=dt,
            units={"length": "angstrom", "time": "ps"},
            metadata={
                "dataset": "adk",
                "source_sha256": sources,
                "frames_per_run": raw["frames_per_run"],
                "frames_used": int(pos.shape[1]),
                "join": opts.join,
                "dt_source": dt_source,
                "node_attr_source": attr_source,
                "node_attr_columns": ["q_N", "q_CA", "q_C", "q_O"],
                "channels": list(BACKBONE),
                "edge_attr_columns": ["CA-CA distance at frame 0"],
                "contact_cutoff": opts.cutoff,
                "residues": raw["residues"],
                "skipped_residues": raw["skipped"],
                "preparation": {
                    **prep,
                    "steps": [
                        "nodes: protein residues with exactly one N, CA, C, O atom",
                        f"edges: CA-CA under {opts.cutoff} A at frame 0 of the first run",
                        "runs cut to the shortest" if len(set(raw["frames_per_run"])) > 1 else "runs of equal length",
                    ],
                },
            },
        )

    cache_dir = data_dir(opts.data_dir) / "cache" if opts.cache else None
    traj, status = load_or_build("adk", key, build, cache_dir=cache_dir)
    traj.metadata.update(
        topology=str(Path(topology).resolve()),
        trajectories=[str(Path(t).resolve()) for t in trajectories or []],
        shipped_test_files=shipped,
        cache=status,
    )
    if shipped:
        traj.metadata["note"] = SHIPPED_NOTE
    return traj, status


def build_adk(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``adk``: backbone windows with the paper's chronological split.

    ``seed`` is not used: the split is chronological.
    """
    opts = parse_options(AdkOptions, options)
    T = PAPER_T if window.T is None else window.T
    delta = PAPER_DELTA if window.delta is None else window.delta
    traj, _ = load_prepared(opts)
    where = " + ".join([traj.metadata["topology"], *traj.metadata["trajectories"]])
    span = T * delta
    starts = chronological_starts(traj.n_frames, traj.n_runs, span, opts.fractions)
    for name, s in starts.items():
        if len(s) == 0:
            raise GraphdynError(
                f"the {name} split is empty: {traj.n_frames} frames per run leave {max(traj.n_frames - span, 0)} "
                f"window starts for T={T}, delta={delta}; use a longer trajectory or lower data.T / data.delta",
                path=where, field="data.T",
            )
    traj.metadata["options"] = opts.model_dump()
    traj.metadata["window"] = {"T": T, "delta": delta}
    splits = {name: WindowDataset(traj, T=T, delta=delta, starts=s) for name, s in starts.items()}
    description = {
        "dataset": "adk",
        "topology": traj.metadata["topology"],
        "trajectories": traj.metadata["trajectories"],
        "source_sha256": traj.metadata["source_sha256"],
        "shipped_test_files": traj.metadata["shipped_test_files"],
        **window_summary(splits),
        "split": {"procedure": "chronological per run", "fractions": list(opts.fractions)},
        "node_attr_source": traj.metadata["node_attr_source"],
        "cache": traj.metadata["cache"],
    }
    if traj.metadata["shipped_test_files"]:
        description["note"] = SHIPPED_NOTE
    return DataSplits("adk", splits["train"], splits["val"], splits["test"], description=description)
