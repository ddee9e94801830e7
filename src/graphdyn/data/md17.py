"""MD17 molecular dynamics, prepared exactly as in ESTAG (Wu et al., NeurIPS 2023).

Source files are the sGDML ``.npz`` archives (``R`` [F, atoms, 3] in angstrom, ``z`` [atoms]
atomic numbers; ``E`` and ``F`` are read only with ``with_energy_forces``), under any of
their published names (``aspirin_dft.npz``, ``md17_aspirin.npz``, ``benzene2017_dft.npz``,
...; see :data:`FILE_NAMES`). Files written by :mod:`graphdyn.physics.molecule` use the
same keys and are read unchanged; a scalar ``dt`` key (femtoseconds) is honoured.

Preparation, in the paper's order (ESTAG spec section 3.1):

1. drop the last frame;
2. benzene only: subtract the per-frame mean over all atoms, hydrogens included;
3. remove hydrogens (keep ``z > 1``); no scaling or standardisation;
4. graph from the first remaining frame: 1-hop edges between heavy atoms closer than
   1.6 angstrom, 2-hop edges between neighbours of neighbours (non-zero ``(A^2)_ij``,
   ``i != j``), both directions; edge attribute ``[Z_i, Z_j, hop]``; node attribute ``Z``;
5. windows of ``T = 10`` frames spaced ``delta = 10`` apart (target ``s + 100``);
6. start frames drawn by :func:`paper_split` (numpy seed 100), truncated to 500 / 2000 /
   2000 windows.

The prepared trajectory is cached (:mod:`graphdyn.data.cache`) by the file's SHA-256 and the
preparation options.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from graphdyn.data.cache import cache_key, data_dir, file_sha256, load_or_build
from graphdyn.data.registry import SPLIT_NAMES, DataSplits, Fractions, Options, Window, parse_options, starts_digest, window_summary
from graphdyn.data.trajectory import Trajectory
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError

#: Bumped whenever the preparation changes, so old cache entries are never reused.
PREP_VERSION = 1

MOLECULES = ("aspirin", "benzene", "ethanol", "malonaldehyde", "naphthalene", "salicylic", "toluene", "uracil")

#: Published file names per molecule, in the order they are looked for. ``<mol>_dft.npz`` is
#: the name the authors' code reads; the others are the sGDML and quantum-machine.org names.
#: Which benzene file the paper used is not stated: the authors' name comes first, then the
#: 2017 MD17 file, then the "old" one.
FILE_NAMES: dict[str, tuple[str, ...]] = {
    "aspirin": ("aspirin_dft.npz", "md17_aspirin.npz"),
    "benzene": ("benzene_dft.npz", "benzene2017_dft.npz", "md17_benzene2017.npz", "benzene_old_dft.npz"),
    "ethanol": ("ethanol_dft.npz", "md17_ethanol.npz"),
    "malonaldehyde": ("malonaldehyde_dft.npz", "md17_malonaldehyde.npz"),
    "naphthalene": ("naphthalene_dft.npz", "md17_naphthalene.npz"),
    "salicylic": ("salicylic_dft.npz", "md17_salicylic.npz"),
    "toluene": ("toluene_dft.npz", "md17_toluene.npz"),
    "uracil": ("uracil_dft.npz", "md17_uracil.npz"),
}
_ALIASES = {"salicylic_acid": "salicylic", "malonaldehyd": "malonaldehyde"}

#: Paper defaults (spec section 3.1).
PAPER_T = 10
PAPER_DELTA = 10
PAPER_SKIP = 10_000
PAPER_FRACTIONS = (0.1, 0.05, 0.05)
PAPER_SIZES = (500, 2000, 2000)
PAPER_SPLIT_SEED = 100
BOND_CUTOFF = 1.6
#: MD17 frame spacing commonly cited for the sGDML files (unverified: not stored in them).
ASSUMED_DT_FS = 0.5



class Md17Options(Options):
    """``data.options`` of the ``md17`` dataset.

    Give either ``path`` (one ``.npz`` file) or ``molecule`` (looked up under ``data_dir``
    and ``data_dir/md17`` by :data:`FILE_NAMES`). Sizes of ``None`` keep the whole pool.
    """

    path: str | None = None
    molecule: str | None = None
    data_dir: str | None = None
    dt: float | None = Field(default=None, gt=0, description="frame spacing in fs; default the file's 'dt' key, else 0.5")
    recentre: bool | None = Field(default=None, description="subtract the per-frame atom mean; default: benzene only")
    skip: int = Field(default=PAPER_SKIP, ge=0, description="frames left out at each end of the candidate starts")
    fractions: Fractions = PAPER_FRACTIONS
    train_size: int | None = Field(default=PAPER_SIZES[0], ge=1)
    val_size: int | None = Field(default=PAPER_SIZES[1], ge=1)
    test_size: int | None = Field(default=PAPER_SIZES[2], ge=1)
    split_seed: int = PAPER_SPLIT_SEED
    bond_cutoff: float = Field(default=BOND_CUTOFF, gt=0)
    with_energy_forces: bool = False
    cache: bool = True

    @field_validator("molecule")
    @classmethod
    def _known_molecule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = _ALIASES.get(value.lower(), value.lower())
        if name not in MOLECULES:
            raise ValueError(f"unknown molecule {value!r}; choose one of {', '.join(MOLECULES)}")
        return name

    @model_validator(mode="after")
    def _path_or_molecule(self) -> "Md17Options":
        if self.path is None and self.molecule is None:
            raise ValueError("give 'path' (an MD17 .npz file) or 'molecule' (one of " + ", ".join(MOLECULES) + ")")
        return self


# ---------------------------------------------------------------------------- files
def molecule_from_name(path: str | Path) -> str | None:
    """The molecule a published file name stands for (``md17_benzene2017.npz`` -> benzene), or None."""
    name = Path(path).name.lower()
    for mol, names in FILE_NAMES.items():
        if name in names:
            return mol
    return None


def molecule_from_label(label: str) -> str | None:
    """The molecule a free label names (``"benzene2017"``, ``"md17_aspirin"``...), or None."""
    label = label.lower().strip()
    for prefix in ("md17_", "rmd17_"):
        label = label.removeprefix(prefix)
    for name in (*MOLECULES, *_ALIASES):
        if label.startswith(name):
            return _ALIASES.get(name, name)
    return None


def _name_key(path: Path) -> str | None:
    """The archive's ``name`` key (sGDML files carry one), or None; read errors come later."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if hasattr(npz, "files") and "name" in npz.files and npz["name"].ndim == 0:
                return str(npz["name"])
    except Exception:
        pass
    return None


def infer_molecule(path: str | Path) -> str | None:
    """Molecule of a file: from its published name, else from its ``name`` key, else None."""
    path = Path(path)
    found = molecule_from_name(path)
    if found is None:
        label = _name_key(path)
        found = None if label is None else molecule_from_label(label)
    return found


def find_md17_file(molecule: str, folder: str | Path | None = None) -> Path:
    """The first existing file of :data:`FILE_NAMES` ``[molecule]`` in ``folder`` or ``folder/md17``.

    Raises :class:`GraphdynError` listing every path tried and where to get the file.
    """
    root = data_dir(folder)
    tried = []
    for sub in (root, root / "md17"):
        for name in FILE_NAMES[molecule]:
            candidate = sub / name
            tried.append(candidate)
            if candidate.is_file():
                return candidate
    raise GraphdynError(
        f"MD17 file for {molecule!r} not found (looked for {', '.join(FILE_NAMES[molecule])}); "
        f"fetch it with `graphdyn data download md17 --molecule {molecule}` or from http://sgdml.org "
        f"and put it there, or set data.options.path",
        path=root,
    )


def read_md17(path: str | Path, *, with_energy_forces: bool = False) -> dict[str, Any]:
    """Read and validate an sGDML-format ``.npz``.

    Returns a dict with ``R`` [F, atoms, 3] float64, ``z`` [atoms] int64, ``dt`` (float or
    None, from a scalar ``dt`` key), ``keys`` (all keys of the archive) and, with
    ``with_energy_forces``, ``E`` [F] and ``F`` [F, atoms, 3]. Every problem (unreadable
    file, missing key, bad shape, NaN or infinite values) is a one-line
    :class:`GraphdynError` naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphdynError("file not found", path=path)
    out: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise GraphdynError("expected an .npz archive with keys 'R' and 'z', got a single array", path=path)
            keys = list(npz.files)
            if "R" not in keys and {"coords", "nuclear_charges"} <= set(keys):
                raise GraphdynError(
                    "this is revised MD17 (keys 'coords', 'nuclear_charges'): its frames are independent "
                    "samples, not a trajectory, so they cannot be windowed; use the original MD17 file",
                    path=path,
                )
            for key in ("R", "z"):
                if key not in keys:
                    raise GraphdynError(f"missing key (the file has {', '.join(keys) or 'no keys'})", path=path, field=key)
            out["keys"] = keys
            out["R"] = np.asarray(npz["R"])
            out["z"] = np.asarray(npz["z"])
            if "dt" in keys:
                out["dt"] = np.asarray(npz["dt"])
            out["unit_keys"] = {k: str(npz[k]) for k in ("r_unit", "e_unit", "t_unit") if k in keys and npz[k].ndim == 0}
            if with_energy_forces:
                for key in ("E", "F"):
                    if key not in keys:
                        raise GraphdynError("missing key (needed with with_energy_forces)", path=path, field=key)
                    out[key] = np.asarray(npz[key])
    except GraphdynError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise GraphdynError(f"not a readable .npz file ({exc.__class__.__name__}: {exc})", path=path) from None
    except Exception as exc:  # zlib.error and other decoder failures of a corrupt archive
        raise GraphdynError(f"corrupt .npz file ({exc.__class__.__name__}: {exc})", path=path) from None

    R, z = out["R"], out["z"]
    if R.ndim != 3 or R.shape[2] != 3:
        raise GraphdynError(f"expected shape [frames, atoms, 3], got {R.shape}", path=path, field="R")
    if not np.issubdtype(R.dtype, np.number):
        raise GraphdynError(f"expected numbers, got dtype {R.dtype}", path=path, field="R")
    if R.shape[0] < 2:
        raise GraphdynError(f"need at least 2 frames, got {R.shape[0]}", path=path, field="R")
    z = z.reshape(-1) if z.ndim == 2 and 1 in z.shape else z
    if z.ndim != 1 or z.shape[0] != R.shape[1]:
        raise GraphdynError(f"expected {R.shape[1]} atomic numbers (one per atom of R), got shape {z.shape}", path=path, field="z")
    if not np.issubdtype(z.dtype, np.number) or not np.all(np.isfinite(z)) or np.any(z != np.round(z)) or np.any(z < 1):
        raise GraphdynError("atomic numbers must be positive integers", path=path, field="z")
    out["z"] = z.astype(np.int64)
    r_unit = out["unit_keys"].get("r_unit", "Ang")
    if r_unit.lower() not in ("ang", "angstrom", "a", "å"):
        raise GraphdynError(f"positions are in {r_unit!r}; the MD17 preparation (1.6 A bonds) needs angstrom", path=path, field="r_unit")
    out["R"] = _finite_float(R, path, "R")
    if "dt" in out:
        dt = out["dt"]
        if dt.size != 1 or not np.issubdtype(dt.dtype, np.number) or not np.isfinite(dt).all() or float(dt.reshape(-1)[0]) <= 0:
            raise GraphdynError(f"expected one positive time step in fs, got {dt!r}", path=path, field="dt")
        out["dt"] = float(dt.reshape(-1)[0])
    else:
        out["dt"] = None
    if with_energy_forces:
        E = out["E"]
        if E.shape not in ((R.shape[0],), (R.shape[0], 1)):
            raise GraphdynError(f"expected one energy per frame ({R.shape[0]}), got shape {E.shape}", path=path, field="E")
        out["E"] = _finite_float(E.reshape(-1), path, "E")
        if out["F"].shape != R.shape:
            raise GraphdynError(f"expected the shape of R {R.shape}, got {out['F'].shape}", path=path, field="F")
        out["F"] = _finite_float(out["F"], path, "F")
    return out


def _finite_float(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise GraphdynError(f"contains NaN or infinite values (first at index {first})", path=path, field=key)
    return arr


# ---------------------------------------------------------------------------- preparation
def bond_graph(x0: np.ndarray, z: np.ndarray, cutoff: float = BOND_CUTOFF) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """1-hop (distance < ``cutoff``) plus 2-hop edges of a molecule, both directions.

    With ``A`` the bond adjacency (``A_ij = 1`` iff ``||x_i - x_j|| < cutoff``, ``i != j``),
    2-hop pairs are those with ``(A^2)_ij > 0``, ``i != j``, that are not bonds themselves.
    The authors assert that no pair is both (no 3-rings, true for all eight molecules);
    here such a pair stays a bond and is counted in ``three_ring_pairs``.

    Args:
        x0: [N, 3] positions of the frame the graph is built from.
        z: [N] atomic numbers.
        cutoff: bond length threshold (angstrom).

    Returns:
        ``edge_index`` [2, E] int64 (row 0 receiver i, row 1 sender j; bonds first, each
        block sorted by (i, j)), ``edge_attr`` [E, 3] float64 ``[Z_i, Z_j, hop]`` and counts
        ``{"bonds", "two_hop", "three_ring_pairs"}`` (undirected pairs).
    """
    n = x0.shape[0]
    dist = np.linalg.norm(x0[:, None, :] - x0[None, :, :], axis=-1)
    off_diag = ~np.eye(n, dtype=bool)
    a1 = (dist < cutoff) & off_diag
    reach2 = (a1.astype(np.int64) @ a1.astype(np.int64) > 0) & off_diag
    a2 = reach2 & ~a1
    i1, j1 = np.nonzero(a1)
    i2, j2 = np.nonzero(a2)
    recv = np.concatenate([i1, i2]).astype(np.int64)
    send = np.concatenate([j1, j2]).astype(np.int64)
    hop = np.concatenate([np.ones(len(i1)), np.full(len(i2), 2.0)])
    edge_attr = np.stack([z[recv].astype(np.float64), z[send].astype(np.float64), hop], axis=1).reshape(-1, 3)
    counts = {
        "bonds": int(a1.sum() // 2),
        "two_hop": int(a2.sum() // 2),
        "three_ring_pairs": int((a1 & reach2).sum() // 2),
    }
    return np.stack([recv, send]), edge_attr, counts


def prepare_md17(
    R: np.ndarray,
    z: np.ndarray,
    *,
    recentre: bool,
    bond_cutoff: float = BOND_CUTOFF,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Apply the paper's preparation steps 1-4 to raw arrays.

    Args:
        R: [F, atoms, 3] positions (angstrom).
        z: [atoms] atomic numbers.
        recentre: subtract the per-frame mean over *all* atoms (benzene in the paper),
            before hydrogens are removed.

    Returns:
        dict with ``positions`` [F-1, N, 3] (heavy atoms), ``z`` [N], ``heavy`` [atoms] bool
        mask, ``edge_index`` [2, E], ``edge_attr`` [E, 3] and ``counts`` (see :func:`bond_graph`).
    """
    x = R[:-1]
    if recentre:
        x = x - x.mean(axis=1, keepdims=True)
    heavy = z > 1
    if not heavy.any():
        raise GraphdynError("no heavy atoms (all atomic numbers are 1)", path=path, field="z")
    x = np.ascontiguousarray(x[:, heavy])
    zh = z[heavy]
    edge_index, edge_attr, counts = bond_graph(x[0], zh, bond_cutoff)
    return {"positions": x, "z": zh, "heavy": heavy, "edge_index": edge_index, "edge_attr": edge_attr, "counts": counts}


def paper_split(
    n_frames: int,
    *,
    skip: int = PAPER_SKIP,
    fractions: tuple[float, float, float] = PAPER_FRACTIONS,
    seed: int = PAPER_SPLIT_SEED,
) -> list[np.ndarray]:
    """Candidate pools of window start frames, drawn as the authors did (before truncation).

    With ``n = n_frames - 2 * skip`` candidates ``c = 0 .. n-1`` (start frame ``c + skip``),
    exactly these numpy calls are made, in this order, on one legacy generator::

        rs = np.random.RandomState(seed)          # same stream as np.random.seed(seed)
        for frac in fractions:                    # train, val, test
            rest = ascending candidates not drawn yet
            pool = rs.choice(rest, size=int(frac * n), replace=False)

    Legacy ``RandomState.choice`` without replacement and without ``p`` is
    ``rest[rs.permutation(len(rest))[:size]]``: each draw consumes one full legacy
    permutation of the remaining candidates. Note that every size is a fraction of *all*
    ``n`` candidates (aspirin: 19 176 / 9 588 / 9 588 of 191 761), not of the remainder.

    Args:
        n_frames: frames of the prepared trajectory (after dropping the last frame).

    Returns:
        Three int64 arrays of start frames in drawn order (train, val, test pools); the
        paper keeps the first 500 / 2000 / 2000 of each.
    """
    n = n_frames - 2 * skip
    if n <= 0:
        return [np.zeros(0, dtype=np.int64) for _ in fractions]
    rs = np.random.RandomState(seed)
    taken = np.zeros(n, dtype=bool)
    pools = []
    for frac in fractions:
        rest = np.flatnonzero(~taken)
        pool = rs.choice(rest, size=int(frac * n), replace=False)
        taken[pool] = True
        pools.append(pool.astype(np.int64) + skip)
    return pools


def resolve_source(opts: Md17Options) -> tuple[Path, str | None]:
    """The file to read and the molecule it holds (None if unknown)."""
    if opts.path is not None:
        path = Path(opts.path).expanduser()
        if not path.is_file():
            raise GraphdynError("file not found (data.options.path)", path=path)
        return path, opts.molecule or infer_molecule(path)
    return find_md17_file(opts.molecule, opts.data_dir), opts.molecule


def load_prepared(opts: Md17Options) -> tuple[Trajectory, str]:
    """Read, prepare and cache the trajectory for ``opts``; returns it and the cache status."""
    path, molecule = resolve_source(opts)
    recentre = (molecule == "benzene") if opts.recentre is None else opts.recentre
    sha = file_sha256(path)
    prep = {"recentre": recentre, "bond_cutoff": opts.bond_cutoff, "with_energy_forces": opts.with_energy_forces, "dt": opts.dt}
    key = cache_key("md17", PREP_VERSION, {"source": sha}, prep)

    def build() -> Trajectory:
        raw = read_md17(path, with_energy_forces=opts.with_energy_forces)
        p = prepare_md17(raw["R"], raw["z"], recentre=recentre, bond_cutoff=opts.bond_cutoff, path=path)
        if opts.dt is not None:
            dt, dt_source = opts.dt, "option"
        elif raw["dt"] is not None:
            dt, dt_source = raw["dt"], "file key 'dt'"
        else:
            dt, dt_source = ASSUMED_DT_FS, "assumed 0.5 fs (MD17 sampling, unverified: not in the file)"
        file_units = raw["unit_keys"]
        units = {"length": "angstrom", "time": file_units.get("t_unit", "fs") if dt_source.startswith("file") else "fs"}
        extra: dict[str, Any] = {}
        if opts.with_energy_forces:
            extra = {"energy": raw["E"][:-1][None], "forces": raw["F"][:-1][:, p["heavy"]][None]}
            # sGDML's MD17 files are in kcal/mol unless an 'e_unit' key says otherwise.
            e_unit = file_units.get("e_unit", "kcal/mol")
            units.update(energy=e_unit, force=f"{e_unit}/angstrom")
        return Trajectory(
            positions=p["positions"][None],
            edge_index=p["edge_index"],
            edge_attr=p["edge_attr"],
            node_attr=p["z"].astype(np.float64)[:, None],
            dt=dt,
            units=units,
            metadata={
                "dataset": "md17",
                "source_sha256": sha,
                "source_keys": raw["keys"],
                "frames_in_file": int(raw["R"].shape[0]),
                "atoms_in_file": int(raw["R"].shape[1]),
                "heavy_atoms": int(p["z"].shape[0]),
                "atomic_numbers": p["z"].tolist(),
                "dt_source": dt_source,
                "preparation": {
                    **prep,
                    "steps": [
                        "dropped the last frame",
                        "subtracted the per-frame mean over all atoms" if recentre else "no recentring",
                        "removed hydrogens (z > 1)",
                        f"1-hop edges under {opts.bond_cutoff} A at the first frame plus 2-hop pairs",
                    ],
                },
                "graph": p["counts"],
                "edge_attr_columns": ["Z_i", "Z_j", "hop"],
                "node_attr_columns": ["Z"],
            },
            **extra,
        )

    cache_dir = data_dir(opts.data_dir) / "cache" if opts.cache else None
    traj, status = load_or_build("md17", key, build, cache_dir=cache_dir)
    # Path-dependent facts are not part of the cache key: set them on every load.
    traj.metadata.update(source_file=str(path.resolve()), source_name=path.name, molecule=molecule, cache=status)
    return traj, status


def split_starts(traj: Trajectory, opts: Md17Options, span: int, path: str | Path) -> dict[str, np.ndarray]:
    """Start frames per split: :func:`paper_split` pools truncated to the requested sizes.

    Raises :class:`GraphdynError` naming the file when a window would not fit (``skip <
    T * delta``) or a split asks for more windows than its pool holds.
    """
    if opts.skip < span:
        raise GraphdynError(
            f"skip={opts.skip} must be at least T*delta={span} so every window ends inside the trajectory; "
            "raise skip or lower data.T / data.delta",
            path=path,
            field="data.options.skip",
        )
    pools = paper_split(traj.n_frames, skip=opts.skip, fractions=opts.fractions, seed=opts.split_seed)
    sizes = (opts.train_size, opts.val_size, opts.test_size)
    n_candidates = max(traj.n_frames - 2 * opts.skip, 0)
    out = {}
    for name, pool, size, frac in zip(SPLIT_NAMES, pools, sizes, opts.fractions):
        want = len(pool) if size is None else size
        if want > len(pool) or len(pool) == 0:
            raise GraphdynError(
                f"the {name} split asks for {want} windows but the paper's procedure gives only {len(pool)} "
                f"({frac:g} of {n_candidates} candidate starts = {traj.n_frames} frames minus skip={opts.skip} at each end); "
                f"lower data.options.{name}_size or skip",
                path=path,
            )
        out[name] = pool[:want]
    return out


def build_md17(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``md17``: the paper's windows and split of one molecule.

    ``seed`` (the run seed) is not used: the split has its own seed (``split_seed``, 100 as
    in the paper), so every run of a molecule sees the same windows.
    """
    opts = parse_options(Md17Options, options)
    T = PAPER_T if window.T is None else window.T
    delta = PAPER_DELTA if window.delta is None else window.delta
    traj, _ = load_prepared(opts)
    path = traj.metadata["source_file"]
    starts = split_starts(traj, opts, T * delta, path)
    traj.metadata["options"] = opts.model_dump()
    traj.metadata["window"] = {"T": T, "delta": delta}
    splits = {name: WindowDataset(traj, T=T, delta=delta, starts=np.stack([np.zeros_like(s), s], 1)) for name, s in starts.items()}
    description = {
        "dataset": "md17",
        "molecule": traj.metadata["molecule"],
        "source_file": path,
        "source_sha256": traj.metadata["source_sha256"],
        **window_summary(splits),
        "split": {
            "procedure": "paper (numpy RandomState choice without replacement)",
            "seed": opts.split_seed,
            "skip": opts.skip,
            "fractions": list(opts.fractions),
            "starts_sha256": starts_digest(splits),
        },
        "cache": traj.metadata["cache"],
    }
    return DataSplits("md17", splits["train"], splits["val"], splits["test"], description=description)


def describe_md17(path: str | Path) -> dict[str, Any]:
    """Summary of an MD17 file as the paper would prepare it (used by ``graphdyn data info``)."""
    path = Path(path)
    raw = read_md17(path)
    molecule = infer_molecule(path)
    recentre = molecule == "benzene"
    p = prepare_md17(raw["R"], raw["z"], recentre=recentre, path=path)
    n_frames = p["positions"].shape[0]
    symbols = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 16: "S", 17: "Cl"}
    elements, counts = np.unique(raw["z"], return_counts=True)
    # Hill order: C, then H, then the rest alphabetically.
    parts = sorted(((symbols.get(int(e), f"Z{int(e)}"), int(c)) for e, c in zip(elements, counts)),
                   key=lambda p: (p[0] != "C", p[0] != "H", p[0]))
    formula = " ".join(f"{sym}{c}" for sym, c in parts)
    pools = paper_split(n_frames)
    fits = all(len(pool) >= size for pool, size in zip(pools, PAPER_SIZES))
    return {
        "format": "MD17 (sGDML .npz)",
        "file": str(path),
        "sha256": file_sha256(path),
        "keys": raw["keys"],
        "molecule": molecule or "unknown (neither the file name nor its 'name' key is an MD17 molecule)",
        "frames": int(raw["R"].shape[0]),
        "atoms": int(raw["R"].shape[1]),
        "formula": formula,
        "dt": f"{raw['dt']} fs (file)" if raw["dt"] is not None else f"{ASSUMED_DT_FS} fs (assumed, unverified)",
        "prepared (paper)": {
            "frames": n_frames,
            "nodes (heavy atoms)": int(p["z"].shape[0]),
            "edges (directed)": int(p["edge_index"].shape[1]),
            "bonds < 1.6 A": p["counts"]["bonds"],
            "2-hop pairs": p["counts"]["two_hop"],
            "recentred": recentre,
            "window": f"T={PAPER_T}, delta={PAPER_DELTA}",
            "split pools (train/val/test)": "/".join(str(len(pool)) for pool in pools),
            "samples (train/val/test)": (
                "/".join(str(s) for s in PAPER_SIZES) if fits
                else "too short for the paper's 500/2000/2000 (set train_size/val_size/test_size or skip)"
            ),
        },
    }
