"""CMU motion capture as in the ESTAG paper (spec section 3.3): walk and basketball.

Data flow: ``<subject>.asf`` + ``<subject>_<trial>.amc`` -> forward kinematics
(:mod:`graphdyn.data.asf_amc`, 31 joints in ASF length units) -> per-trial preparation ->
one :class:`Trajectory` per split (its trials are the runs) -> windows.

The paper's preparation, per trial:

1. the basketball trial ``102_10`` loses its first 6 frames (the authors' preprocessing
   drops them from every file whose name ends in ``_10``; their script was set up for
   subject 102, and with graphdyn's trial list the walk case also has a ``35_10``, so the
   rule is applied to both paper cases: ``skip_first`` defaults to ``{"<subject>_10": 6}``
   and is empty for user files);
2. the last frame is dropped;
3. the trial's grand mean, one scalar over all frames, joints and x/y/z, is subtracted.

Splits are fixed trial ids (:data:`CASES`). For every trial, in the order train ids ->
val ids -> test ids, 100 distinct start frames are drawn from ``range(start_pool)``
(300 walk, 120 basketball) with ``numpy.random.RandomState(100).choice(..., replace=False)``,
one generator for the whole sequence, exactly as the authors' code. A sample starting at
``s`` observes ``s, s+5, ..., s+45`` and predicts ``s+50`` (T = 10, delta = 5).

Trials have different lengths, but the windows only read frames below ``start_pool +
T*delta``. Each split's trials are therefore cut to the length of the split's shortest trial
(every trial must reach ``start_pool + T*delta`` frames, else an error). Since the mean of
step 3 is taken over the whole trial first, the cut changes no sample: the windows are
exactly the paper's.

Trial ids: the authors numbered trials in ``glob`` order, which was not recorded. graphdyn
fixes id i as the i-th file of :data:`CASES` ``trials`` (increasing trial number): walk is
subject 35's 23 "walk" trials 35_01-16 and 35_28-34 (see :mod:`graphdyn.data.download`).
For basketball, which 24 of subject 102's 33 trials the paper used is not known; the default
is the first 24 takes other than the calibration take 102_09 (01-08, 10-25), an assumption
recorded in the description; pass ``trials`` to choose others.

Files are looked for in ``data_dir`` itself, then in ``<data_dir>/mocap/<subject>/`` where
``graphdyn data download mocap --subject N`` puts them (``data_dir`` defaults to
``$GRAPHDYN_DATA``, else ``~/.cache/graphdyn``). Forward kinematics of each trial is cached
under ``<data_dir>/cache/`` keyed by the SHA-256 of the ASF and AMC files
(:mod:`graphdyn.data.cache`).

Own data: ``asf`` and ``amc`` (a list; trial id = position in it) with a ``split`` of ids,
and optionally ``start_pool`` (default every start that fits the shortest trial) and
``starts_per_trial`` (default the whole pool). Relative ``asf``/``amc`` paths are resolved
against ``data_dir`` when it is given, else the working directory. No frames are skipped
(``skip_first``) unless asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from graphdyn.data.asf_amc import Skeleton, joint_positions, read_amc, read_asf, skeleton_edges
from graphdyn.data.cache import cache_key, data_dir, file_sha256, load_or_build
from graphdyn.data.registry import SPLIT_NAMES, DataSplits, Options, Window, parse_options, starts_digest
from graphdyn.data.trajectory import Trajectory
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError

#: Bumped whenever the forward kinematics changes, so old cache entries are never reused.
PREP_VERSION = 1
PAPER_T = 10
PAPER_DELTA = 5
PAPER_STARTS_PER_TRIAL = 100
PAPER_SPLIT_SEED = 100
#: CMU captures at 120 frames per second (most trials; unverified for every trial).
FRAME_RATE = 120.0
SOURCE_URL = "http://mocap.cs.cmu.edu/subjects/{subject}/"

CASES: dict[str, dict[str, Any]] = {
    "walk": {
        "subject": 35,
        "trials": [*range(1, 17), *range(28, 35)],
        "split": {
            "train": [20, 1, 17, 13, 14, 9, 4, 2, 7, 5, 16],
            "val": [3, 8, 11, 12, 15, 18],
            "test": [6, 19, 21, 0, 22, 10],
        },
        "start_pool": 300,
    },
    "basketball": {
        "subject": 102,
        "trials": [*range(1, 9), *range(10, 26)],
        "trials_assumed": True,
        "split": {
            "train": [20, 1, 17, 13, 14, 9, 4, 2, 7, 5, 16, 18],
            "val": [3, 0, 11, 21, 15, 23],
            "test": [6, 19, 12, 8, 22, 10],
        },
        "start_pool": 120,
    },
}
_SUBJECT_CASE = {spec["subject"]: name for name, spec in CASES.items()}


class MocapOptions(Options):
    """``data.options`` of the ``mocap`` dataset.

    Give ``case`` (walk | basketball) or ``subject`` (35 | 102), or your own ``asf`` + ``amc``
    files with a ``split``. ``trials``, ``split``, ``start_pool``, ``starts_per_trial`` and
    ``skip_first`` override the paper's values.
    """

    case: Literal["walk", "basketball"] | None = None
    subject: int | None = None
    data_dir: str | None = None
    trials: list[str] | None = Field(default=None, description="AMC file stems in trial-id order, e.g. ['35_01', '35_02']")
    asf: str | None = None
    amc: list[str] | None = None
    split: dict[Literal["train", "val", "test"], list[int]] | None = None
    start_pool: int | None = Field(default=None, ge=1, description="starts are drawn from range(start_pool)")
    starts_per_trial: int | None = Field(default=None, ge=1)
    split_seed: int = PAPER_SPLIT_SEED
    skip_first: dict[str, int] | None = Field(default=None, description="AMC file stem -> frames dropped at its start")
    frame_rate: float = Field(default=FRAME_RATE, gt=0)
    cache: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> "MocapOptions":
        if (self.asf is None) != (self.amc is None):
            raise ValueError("give both 'asf' and 'amc' for your own files")
        if self.asf is not None:
            if self.case is not None or self.subject is not None or self.trials is not None:
                raise ValueError("give either your own 'asf' + 'amc' files or a CMU 'case'/'subject', not both")
            if self.split is None:
                raise ValueError("your own files need a 'split': {train: [ids], val: [ids], test: [ids]} (ids index 'amc')")
            return self
        if self.case is None and self.subject is None:
            self.case = "walk"
        if self.subject is None:
            self.subject = CASES[self.case]["subject"]
        elif self.case is None:
            self.case = _SUBJECT_CASE.get(self.subject)
        elif CASES[self.case]["subject"] != self.subject:
            raise ValueError(f"case {self.case!r} is subject {CASES[self.case]['subject']}, not {self.subject}")
        if self.case is None and (self.trials is None or self.split is None or self.start_pool is None):
            raise ValueError(f"subject {self.subject} is not a paper case (35 walk, 102 basketball); give 'trials', 'split' and 'start_pool'")
        return self


# ---------------------------------------------------------------------------- files
def _find_subject_dir(opts: MocapOptions) -> Path:
    root = data_dir(opts.data_dir)
    for folder in (root, root / "mocap" / str(opts.subject)):
        if (folder / f"{opts.subject}.asf").exists():
            return folder
    return root / "mocap" / str(opts.subject)


def _missing(path: Path, subject: int | None) -> GraphdynError:
    if subject is None:
        return GraphdynError("file not found", path=path)
    url = SOURCE_URL.format(subject=subject)
    return GraphdynError(
        f"file not found; get {path.name} from {url}{path.name} (CMU Graphics Lab Motion Capture Database) "
        f"and put it in {path.parent}, or run `graphdyn data download mocap --subject {subject}` "
        "(set data.options.data_dir or $GRAPHDYN_DATA to use another data folder)",
        path=path,
    )


def resolve_files(opts: MocapOptions) -> tuple[Path, list[Path]]:
    """The ASF path and the AMC paths in trial-id order; raises if any is missing."""
    if opts.asf is not None:
        base = Path(opts.data_dir).expanduser() if opts.data_dir is not None else Path.cwd()
        asf = base / Path(opts.asf).expanduser()
        amcs = [base / Path(p).expanduser() for p in opts.amc]
        subject = None
    else:
        folder = _find_subject_dir(opts)
        stems = opts.trials if opts.trials is not None else [f"{opts.subject}_{t:02d}" for t in CASES[opts.case]["trials"]]
        asf = folder / f"{opts.subject}.asf"
        amcs = [folder / (s if s.endswith(".amc") else f"{s}.amc") for s in stems]
        subject = opts.subject
    for p in (asf, *amcs):
        if not p.exists():
            raise _missing(p, subject)
    return asf, amcs


# ---------------------------------------------------------------------------- preparation
def trial_positions(asf: Path, amc: Path, skeleton: Skeleton, edge_index: np.ndarray, *, cache_dir: Path | None) -> np.ndarray:
    """Forward-kinematics joint positions of one trial, [F, 31, 3] float64 (cached)."""
    key = cache_key("mocap", PREP_VERSION, {"asf": file_sha256(asf), "amc": file_sha256(amc)}, {})

    def build() -> Trajectory:
        pos = joint_positions(skeleton, read_amc(amc, skeleton))
        return Trajectory.from_frames(pos, edge_index=edge_index, dt=1.0, metadata={"asf": asf.name, "amc": amc.name})

    traj, _ = load_or_build("mocap", key, build, cache_dir=cache_dir)
    return traj.positions[0]


def prepare_trial(positions: np.ndarray, skip_first: int = 0) -> np.ndarray:
    """The paper's per-trial preparation of ``positions`` [F, N, 3].

    Drops the first ``skip_first`` frames and the last frame, then subtracts the grand mean
    ``mean(x)`` over frames, joints and coordinates (one scalar). Returns [F - skip_first - 1, N, 3].
    """
    x = positions[skip_first:-1]
    return x - x.mean()


def draw_starts(split: dict[str, list[int]], start_pool: int, per_trial: int, seed: int) -> dict[str, list[np.ndarray]]:
    """The paper's start frames: for each split (train, val, test) and each of its trial ids
    in order, ``per_trial`` distinct frames from ``range(start_pool)``, all drawn from one
    ``numpy.random.RandomState(seed)``. Returns split -> list of [per_trial] int arrays."""
    rng = np.random.RandomState(seed)
    return {name: [rng.choice(np.arange(start_pool), size=per_trial, replace=False) for _ in split[name]] for name in SPLIT_NAMES}


def _check_split(split: dict[str, list[int]], n_trials: int) -> None:
    missing = [k for k in SPLIT_NAMES if k not in split]
    if missing:
        raise GraphdynError(f"split lacks {', '.join(missing)}", field="data.options.split")
    ids = [i for name in SPLIT_NAMES for i in split[name]]
    bad = [i for i in ids if not 0 <= i < n_trials]
    if bad:
        raise GraphdynError(f"trial ids {bad} out of range: there are {n_trials} trials (ids 0..{n_trials - 1})", field="data.options.split")
    if len(set(ids)) != len(ids):
        raise GraphdynError("a trial id appears twice in the split", field="data.options.split")
    empty = [k for k in SPLIT_NAMES if not split[k]]
    if empty:
        raise GraphdynError(f"split {empty[0]!r} has no trials", field="data.options.split")


# ---------------------------------------------------------------------------- builder
def build_mocap(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``mocap``: the paper's walk or basketball windows, or your own files.

    ``seed`` (the run seed) is not used: the start frames have their own seed
    (``split_seed``, 100 as in the paper), so every run sees the same windows.
    """
    opts = parse_options(MocapOptions, options)
    T = PAPER_T if window.T is None else window.T
    delta = PAPER_DELTA if window.delta is None else window.delta
    span = T * delta
    asf, amcs = resolve_files(opts)
    case = CASES.get(opts.case) if opts.case else None
    split = opts.split if opts.split is not None else case["split"]
    _check_split(split, len(amcs))
    skip = opts.skip_first if opts.skip_first is not None else ({f"{opts.subject}_10": 6} if case else {})

    skeleton = read_asf(asf)
    edge_index, edge_attr = skeleton_edges(skeleton)
    cache_dir = data_dir(opts.data_dir) / "cache" if opts.cache else None
    used = sorted({i for name in SPLIT_NAMES for i in split[name]})
    trials = {i: prepare_trial(trial_positions(asf, amcs[i], skeleton, edge_index, cache_dir=cache_dir), skip.get(amcs[i].stem, 0)) for i in used}

    shortest = min(len(x) for x in trials.values())
    pool = opts.start_pool if opts.start_pool is not None else (case["start_pool"] if case else shortest - span)
    if pool < 1:
        raise GraphdynError(f"the shortest trial has {shortest} prepared frames, too few for a window of T={T}, delta={delta} "
                            f"({span + 1} frames); lower data.T / data.delta", field="data.T")
    per_trial = opts.starts_per_trial or (PAPER_STARTS_PER_TRIAL if case else pool)
    if per_trial > pool:
        raise GraphdynError(f"starts_per_trial={per_trial} distinct starts cannot be drawn from start_pool={pool}", field="data.options.starts_per_trial")
    for i, x in trials.items():
        if len(x) < pool + span:
            raise GraphdynError(
                f"trial has {len(x)} frames after preparation; windows starting below start_pool={pool} with T={T}, delta={delta} need {pool + span}",
                path=amcs[i],
            )
    starts = draw_starts(split, pool, per_trial, opts.split_seed)

    units = {"length": f"ASF length unit (:units length {skeleton.length_scale:g})", "time": "s"}
    datasets = {}
    for name in SPLIT_NAMES:
        ids = split[name]
        frames = min(len(trials[i]) for i in ids)
        traj = Trajectory(
            positions=np.stack([trials[i][:frames] for i in ids]),
            edge_index=edge_index,
            edge_attr=edge_attr,
            node_attr=np.ones((skeleton.n_joints, 1)),
            dt=1.0 / opts.frame_rate,
            units=units,
            metadata={
                "dataset": "mocap",
                "case": opts.case,
                "subject": opts.subject,
                "split": name,
                "trial_ids": list(ids),
                "trial_files": [amcs[i].name for i in ids],
                "joint_names": skeleton.joint_names,
            },
        )
        s = np.concatenate([np.stack([np.full(per_trial, r), st], 1) for r, st in enumerate(starts[name])])
        datasets[name] = WindowDataset(traj, T=T, delta=delta, starts=s)

    description = {
        "dataset": "mocap",
        "case": opts.case,
        "subject": opts.subject,
        "asf": str(asf),
        "asf_sha256": file_sha256(asf),
        "trials": [p.name for p in amcs],
        "trials_assumed": bool(case and case.get("trials_assumed") and opts.trials is None),
        "nodes": skeleton.n_joints,
        "edges": int(edge_index.shape[1]),
        "bone_edges": int((edge_attr == 1).sum()),
        "T": T,
        "delta": delta,
        "dt": 1.0 / opts.frame_rate,
        "units": units,
        "samples": {name: len(ds) for name, ds in datasets.items()},
        "split": {
            "trial_ids": {name: list(split[name]) for name in SPLIT_NAMES},
            "procedure": "paper (numpy RandomState choice without replacement, trials train -> val -> test)",
            "seed": opts.split_seed,
            "start_pool": pool,
            "starts_per_trial": per_trial,
            "skip_first": skip,
            "starts_sha256": starts_digest(datasets),
        },
        "preparation": "drop last frame, subtract each trial's grand mean (one scalar)",
    }
    return DataSplits("mocap", datasets["train"], datasets["val"], datasets["test"], description=description)

