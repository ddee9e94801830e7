"""Molecular dynamics of any small molecule with semi-empirical quantum chemistry.

A molecule given as SMILES becomes an MD17-format trajectory, the same file layout as the
sGDML MD17 data sets, so the MD17 pipeline reads it unchanged:

* RDKit adds hydrogens and embeds one conformer (ETKDG with a fixed seed), then relaxes it
  with a short MMFF94 optimisation so the quantum-chemistry forces start small;
* velocities are drawn from the Maxwell-Boltzmann distribution at ``temperature`` (centre
  of mass at rest), and ASE integrates Langevin dynamics with time step ``dt``:

      dp_i = F_i dt - gamma p_i dt + sqrt(2 m_i gamma k_B T) dW_i,

  with ``friction`` = gamma, and the centre of mass held fixed (``FixCom``) so that the
  thermostat noise does not make the molecule drift;
* tblite's GFN2-xTB gives the potential energy E and the forces F_i = -dE/dx_i.

Units follow ASE: positions in Angstrom, energies in eV, forces in eV/Angstrom, time in fs.
(sGDML's own MD17 files store energies in kcal/mol; the ``e_unit`` key says which.)

The quantum-chemistry packages are the optional ``md`` extra (``pip install graphdyn[md]``);
they are imported only when a simulation runs. tblite parallelises with OpenMP; for small
molecules one thread per process is fastest (:func:`one_openmp_thread`), and several
molecules run in parallel processes (:func:`simulate_many`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from graphdyn.errors import GraphdynError
from graphdyn.io import save_npz

# The eight MD17 molecules of the ESTAG paper (spec 3.1), as SMILES. RDKit's atom order
# (heavy atoms in SMILES order, then hydrogens) differs from the sGDML files' order.
MD17_SMILES: dict[str, str] = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "benzene": "c1ccccc1",
    "ethanol": "CCO",
    "malonaldehyde": "O=CCC=O",
    "naphthalene": "c1ccc2ccccc2c1",
    "salicylic": "O=C(O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
}

METHOD = "GFN2-xTB"
_INSTALL_HINT = "molecular dynamics needs the optional md extra: pip install graphdyn[md]"


@dataclass(frozen=True)
class MDConfig:
    """One molecular-dynamics run.

    ``steps`` Langevin steps of ``dt`` fs at ``temperature`` K with friction ``friction``
    (1/fs); a frame is recorded every ``record_every`` steps, starting with the initial
    state, so the trajectory has ``steps // record_every + 1`` frames spaced
    ``dt * record_every`` fs apart (steps past the last recorded frame are not run).
    ``equilibration`` steps are run and discarded first.
    """

    smiles: str
    steps: int
    temperature: float = 500.0
    dt: float = 0.5
    friction: float = 0.01
    record_every: int = 1
    seed: int = 0
    equilibration: int = 0
    method: str = METHOD

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 0,
            "temperature": self.temperature >= 0,
            "dt": self.dt > 0,
            "friction": self.friction >= 0,
            "record_every": self.record_every >= 1,
            "equilibration": self.equilibration >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise GraphdynError(f"'{name}' must be {'positive' if name in ('dt', 'record_every') else 'non-negative'}, got {getattr(self, name)}", field=name)

    @property
    def n_frames(self) -> int:
        return self.steps // self.record_every + 1

    @property
    def total_steps(self) -> int:
        """Steps integrated: equilibration, then up to the last recorded frame."""
        return self.equilibration + (self.n_frames - 1) * self.record_every


def single_thread() -> None:
    """One OpenMP thread for this (worker) process and the processes it starts."""
    os.environ["OMP_NUM_THREADS"] = "1"


def _loaded_libgomp():
    # tblite links the GNU OpenMP runtime, often the copy torch loaded first (same soname),
    # whose thread count was fixed at torch's import; so it is set at run time instead.
    # RTLD_NOLOAD: only a runtime that is already loaded, never a new one.
    try:
        lib = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        lib.omp_get_max_threads.restype = ctypes.c_int
        return lib
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def one_openmp_thread() -> Iterator[None]:
    """Run the body with one OpenMP thread, then restore the previous count.

    Small molecules are fastest single-threaded; with several threads on a busy machine
    the xTB steps slow down twenty-fold (OpenMP threads spin while waiting for a core).
    """
    lib = _loaded_libgomp()
    if lib is None:
        yield
        return
    before = lib.omp_get_max_threads()
    lib.omp_set_num_threads(1)
    try:
        yield
    finally:
        lib.omp_set_num_threads(before)


def _require_md():
    """Import the ``md`` extra, or raise a one-line GraphdynError naming the install command."""
    try:
        from ase import Atoms, units
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import Stationary, thermalize_momenta
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem
        from tblite.ase import TBLite
    except ImportError as exc:
        raise GraphdynError(f"{_INSTALL_HINT} ({exc.name or exc} is not installed)") from None
    return dict(
        Atoms=Atoms, units=units, FixCom=FixCom, Langevin=Langevin, Stationary=Stationary,
        thermalize_momenta=thermalize_momenta, Chem=Chem, RDLogger=RDLogger, AllChem=AllChem,
        TBLite=TBLite,
    )


def resolve_smiles(molecule_or_smiles: str) -> str:
    """An MD17 molecule name (``aspirin``) -> its SMILES; anything else is returned as is."""
    return MD17_SMILES.get(molecule_or_smiles.strip().lower(), molecule_or_smiles)


def parse_smiles(smiles: str):
    """Parse ``smiles`` with RDKit (hydrogens implicit); a one-line GraphdynError if invalid.

    Only neutral closed-shell molecules are accepted: the xTB runs use charge 0, singlet.
    """
    md = _require_md()
    Chem = md["Chem"]
    # RDKit prints parse errors to stderr itself; the GraphdynError below is the one message.
    md["RDLogger"].DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles) if smiles.strip() else None
    finally:
        md["RDLogger"].EnableLog("rdApp.*")
    if mol is None:
        raise GraphdynError(f"invalid SMILES '{smiles}': RDKit cannot parse it", field="smiles")
    if Chem.GetFormalCharge(mol) != 0 or any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        raise GraphdynError(f"SMILES '{smiles}' is charged or a radical; only neutral closed-shell molecules are supported", field="smiles")
    return mol


def embed(smiles: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``smiles`` with hydrogens in 3-D and relax it with MMFF94.

    Returns ``z`` (n_atoms,) int64 atomic numbers (heavy atoms in SMILES order, then
    hydrogens) and ``positions`` (n_atoms, 3) float64 in Angstrom. A SMILES that RDKit
    cannot parse or embed raises a one-line GraphdynError.
    """
    md = _require_md()
    Chem, AllChem = md["Chem"], md["AllChem"]
    mol = Chem.AddHs(parse_smiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) & 0x7FFFFFFF
    if AllChem.EmbedMolecule(mol, params) != 0:
        # Random starting coordinates rescue awkward ring systems that the default misses.
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise GraphdynError(f"SMILES '{smiles}': RDKit could not embed a 3-D conformer", field="smiles")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        # A rough pre-relaxation: the xTB dynamics equilibrate the rest.
        AllChem.MMFFOptimizeMolecule(mol, maxIters=500)
    z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    return z, positions


def _calculator(md: dict, method: str):
    return md["TBLite"](method=method, verbosity=0)


def energy_forces(z: np.ndarray, positions: np.ndarray, method: str = METHOD) -> tuple[float, np.ndarray]:
    """Single-point GFN2-xTB energy (eV) and forces (n_atoms, 3) in eV/Angstrom.

    ``z`` (n_atoms,) atomic numbers, ``positions`` (n_atoms, 3) in Angstrom.
    """
    md = _require_md()
    atoms = md["Atoms"](numbers=z, positions=positions)
    atoms.calc = _calculator(md, method)
    with one_openmp_thread():
        return float(atoms.get_potential_energy()), np.array(atoms.get_forces(), dtype=np.float64)


def simulate_molecule(config: MDConfig, progress: Callable[[int], None] | None = None,
                      progress_every: int = 100) -> dict[str, np.ndarray]:
    """Run one Langevin trajectory with one OpenMP thread; see :func:`_simulate`."""
    _require_md()
    with one_openmp_thread():
        return _simulate(config, progress, progress_every)


def _simulate(config: MDConfig, progress: Callable[[int], None] | None,
              progress_every: int) -> dict[str, np.ndarray]:
    """Run one Langevin trajectory; return the MD17-format arrays.

    Returns ``R`` (frames, n_atoms, 3) Angstrom, ``z`` (n_atoms,), ``E`` (frames,) eV, ``F``
    (frames, n_atoms, 3) eV/Angstrom, plus metadata arrays (``smiles``, ``temperature``,
    ``dt`` in fs between frames, ``dt_step``, ``friction``, ``seed``, ``method``, units...).
    ``progress(k)`` is called with the number of steps done (equilibration included) about
    every ``progress_every`` steps and once at the end (not at all when ``steps`` is 0 and
    there is no equilibration).
    """
    md = _require_md()
    units = md["units"]
    z, positions = embed(config.smiles, config.seed)
    atoms = md["Atoms"](numbers=z, positions=positions)
    atoms.calc = _calculator(md, config.method)
    rng = np.random.default_rng(config.seed)
    md["thermalize_momenta"](atoms, temperature_K=config.temperature, rng=rng)
    md["Stationary"](atoms)
    atoms.set_constraint(md["FixCom"]())
    dyn = md["Langevin"](
        atoms, timestep=config.dt * units.fs, temperature_K=config.temperature,
        friction=config.friction / units.fs, fixcm=False, rng=rng,
    )

    total = config.total_steps
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        while n > 0:
            chunk = min(n, progress_every)
            try:
                dyn.run(chunk)
            except Exception as exc:  # SCF failures surface here as tblite errors
                raise GraphdynError(f"SMILES '{config.smiles}': {config.method} failed after {done} steps ({exc})") from None
            n -= chunk
            # Report when a multiple of progress_every is crossed, not every recorded frame.
            crossed = (done + chunk) // progress_every > done // progress_every
            done += chunk
            if progress is not None and (crossed or done == total):
                progress(done)

    advance(config.equilibration)
    n = config.n_frames
    R = np.empty((n, len(z), 3))
    E = np.empty(n)
    F = np.empty((n, len(z), 3))
    for frame in range(n):
        if frame > 0:
            advance(config.record_every)
        R[frame] = atoms.get_positions()
        # The calculator caches the values of the last step; the raw forces are recorded,
        # not the ones projected by the FixCom constraint.
        E[frame] = atoms.get_potential_energy()
        F[frame] = atoms.get_forces(apply_constraint=False)
    if not (np.isfinite(E).all() and np.isfinite(F).all() and np.isfinite(R).all()):
        raise GraphdynError(f"SMILES '{config.smiles}': the dynamics produced non-finite values; try a smaller --dt")
    return {
        "R": R,
        "z": z,
        "E": E,
        "F": F,
        "smiles": np.array(config.smiles),
        "name": np.array(config.smiles),
        "type": np.array("d"),
        "theory": np.array(f"{config.method} (tblite), Langevin NVT"),
        "method": np.array(config.method),
        "temperature": np.array(config.temperature),
        "dt": np.array(config.dt * config.record_every),
        "dt_step": np.array(config.dt),
        "record_every": np.array(config.record_every),
        "friction": np.array(config.friction),
        "seed": np.array(config.seed),
        "equilibration": np.array(config.equilibration),
        "r_unit": np.array("Ang"),
        "e_unit": np.array("eV"),
        "t_unit": np.array("fs"),
    }


def write_md17(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays of :func:`simulate_molecule` to ``path`` (.npz) atomically."""
    path = Path(path)
    save_npz(path, arrays)
    return path


_PROGRESS_QUEUE = None  # set in each worker process by _worker_init


def _worker_init(queue) -> None:
    global _PROGRESS_QUEUE
    single_thread()
    _PROGRESS_QUEUE = queue


def _run_one(index: int, config: MDConfig, out: str, progress_every: int) -> str:
    queue = _PROGRESS_QUEUE
    report = None if queue is None else (lambda k: queue.put((index, k)))
    write_md17(out, simulate_molecule(config, progress=report, progress_every=progress_every))
    return out


def simulate_many(configs: Sequence[MDConfig], outs: Sequence[str | Path], jobs: int = 1,
                  progress: Callable[[int, int], None] | None = None,
                  progress_every: int = 100) -> list[Path]:
    """Run several molecules, ``jobs`` processes at a time, each single-threaded.

    ``configs[k]`` is written to ``outs[k]``; ``progress(k, steps_done)`` reports each run.
    Worker processes are spawned (not forked) so that each starts OpenMP with one thread.
    The first failure (a GraphdynError, e.g. a bad SMILES) is raised after the other runs
    have stopped; completed files stay, no partial file is left.
    """
    if len(configs) != len(outs):
        raise GraphdynError(f"{len(configs)} molecules but {len(outs)} output files; give one --out per molecule", field="out")
    for config in configs:
        parse_smiles(config.smiles)  # fail fast, before any process starts
    jobs = max(1, min(int(jobs), len(configs)))
    if jobs == 1:
        paths = []
        for k, (config, out) in enumerate(zip(configs, outs)):
            report = None if progress is None else (lambda done, k=k: progress(k, done))
            paths.append(write_md17(out, simulate_molecule(config, progress=report, progress_every=progress_every)))
        return paths

    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    # A queue handed to the workers when they start carries their progress reports.
    queue = ctx.Queue() if progress is not None else None
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(queue,)) as pool:
        futures = [pool.submit(_run_one, k, c, str(o), progress_every) for k, (c, o) in enumerate(zip(configs, outs))]
        pending = set(futures)

        def drain() -> None:
            while queue is not None:
                try:
                    k, done = queue.get_nowait()
                except queue_mod.Empty:
                    return
                progress(k, done)

        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            drain()
            if any(f.done() and f.exception() is not None for f in futures):
                for f in pending:
                    f.cancel()
                break
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()
        paths = [Path(f.result()) for f in futures]
    # Reports still in flight when the last worker finished.
    if queue is not None:
        import time

        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                k, done = queue.get(timeout=0.05)
            except queue_mod.Empty:
                break
            progress(k, done)
    return paths
