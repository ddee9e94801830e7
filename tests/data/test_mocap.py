"""The CMU motion-capture dataset builder on a tiny synthetic subject made from real frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from graphdyn.data.asf_amc import joint_positions, read_amc, read_asf
from graphdyn.data.mocap import CASES, build_mocap, draw_starts
from graphdyn.data.registry import Window, build_dataset
from graphdyn.errors import GraphdynError

FILES = Path(__file__).parent / "files" / "mocap"
# synthetic trials: (file stem, first frame, frame count) cut from the real 01_01
TRIALS = [("35_01", 0, 40), ("35_02", 10, 50), ("35_03", 20, 45), ("35_04", 30, 60), ("35_10", 5, 48)]
SPLIT = {"train": [2, 0], "val": [4], "test": [1, 3]}


def _write_trials(folder: Path, trials=TRIALS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FILES / "01.asf", folder / "35.asf")
    lines = (FILES / "01_01.amc").read_text().replace("\r\n", "\n").split("\n")
    header = [line for line in lines[:5] if line.startswith((":", "#"))]
    frames, cur = [], None
    for line in lines[len(header):]:
        if line.strip().isdigit():
            cur = []
            frames.append(cur)
        elif line.strip():
            cur.append(line)
    for stem, first, count in trials:
        body = [f"{k + 1}\n" + "\n".join(frames[first + k]) for k in range(count)]
        (folder / f"{stem}.amc").write_text("\n".join(header + body) + "\n")


@pytest.fixture()
def subject(tmp_path):
    _write_trials(tmp_path / "data")
    return tmp_path / "data"


def _options(folder: Path, **extra):
    opts = dict(subject=35, data_dir=str(folder), trials=[t[0] for t in TRIALS], split=SPLIT, start_pool=8, starts_per_trial=5)
    opts.update(extra)
    return opts


def test_sample_counts_graph_and_windows(subject):
    data = build_mocap(_options(subject), Window(T=3, delta=2), seed=0)
    assert [len(data.train), len(data.val), len(data.test)] == [10, 5, 10]
    d = data.description
    assert d["nodes"] == 31 and d["edges"] == 130 and d["bone_edges"] == 60
    assert d["split"]["skip_first"] == {"35_10": 6}  # the paper's special trial, by default
    assert data.train.traj.n_runs == 2 and data.test.traj.n_runs == 2
    assert data.train.traj.n_frames == 39  # shortest train trial (35_01: 40 frames) minus the last
    assert data.val.traj.n_frames == 48 - 6 - 1
    batch = data.train.batch()
    assert batch.x.shape == (10, 3, 31, 3) and batch.target_x.shape == (10, 31, 3)
    assert batch.node_attr.shape == (10, 31, 1) and (batch.node_attr == 1).all()
    assert batch.edge_attr.shape == (130, 1)
    assert batch.dt == pytest.approx(2 / 120)


def test_windows_equal_independent_preparation(subject):
    data = build_mocap(_options(subject), Window(T=3, delta=2), seed=0)
    skel = read_asf(subject / "35.asf")
    for ds, stem, skip in ((data.val, "35_10", 6), (data.test, "35_02", 0)):
        x = joint_positions(skel, read_amc(subject / f"{stem}.amc", skel))
        x = x[skip:-1]
        x = x - x.mean()  # one scalar over frames, joints and xyz
        run, start = ds.starts[0]
        assert ds.traj.metadata["trial_files"][run] == f"{stem}.amc"
        b = ds.batch(np.array([0]))
        np.testing.assert_allclose(b.x[0].double().numpy(), x[start : start + 6 : 2], atol=1e-5)
        np.testing.assert_allclose(b.target_x[0].double().numpy(), x[start + 6], atol=1e-5)


def test_start_draw_matches_independent_numpy():
    # legacy choice without replacement is a permutation's prefix; one stream for all trials
    rs = np.random.RandomState(100)
    expected = [rs.permutation(8)[:5] for _ in range(5)]
    got = draw_starts(SPLIT, start_pool=8, per_trial=5, seed=100)
    flat = [a for name in ("train", "val", "test") for a in got[name]]
    for a, b in zip(flat, expected):
        np.testing.assert_array_equal(a, b)
    # the paper's walk case: 23 trials, 100 distinct starts each below 300
    walk = draw_starts(CASES["walk"]["split"], 300, 100, 100)
    rs = np.random.RandomState(100)
    assert [sum(len(a) for a in walk[n]) for n in ("train", "val", "test")] == [1100, 600, 600]
    np.testing.assert_array_equal(walk["train"][0], rs.permutation(300)[:100])
    assert all(len(set(a)) == 100 and a.max() < 300 for n in walk for a in walk[n])


def test_builder_is_deterministic_and_uses_its_own_seed(subject):
    a = build_mocap(_options(subject), Window(T=3, delta=2), seed=0)
    b = build_dataset("mocap", _options(subject), Window(T=3, delta=2), seed=123)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, name).starts, getattr(b, name).starts)
        np.testing.assert_array_equal(getattr(a, name).batch().x.numpy(), getattr(b, name).batch().x.numpy())
    assert a.description["split"]["starts_sha256"] == b.description["split"]["starts_sha256"]
    c = build_mocap(_options(subject, split_seed=7), Window(T=3, delta=2), seed=0)
    assert c.description["split"]["starts_sha256"] != a.description["split"]["starts_sha256"]


def test_cache_is_used_and_cacheless_build_agrees(subject):
    first = build_mocap(_options(subject), Window(T=3, delta=2), seed=0)
    assert len(list((subject / "cache").glob("mocap-*.npz"))) == 5
    plain = build_mocap(_options(subject, cache=False), Window(T=3, delta=2), seed=0)
    np.testing.assert_array_equal(first.test.traj.positions, plain.test.traj.positions)


def test_missing_file_says_where_to_get_it(subject):
    (subject / "35_03.amc").unlink()
    with pytest.raises(GraphdynError) as err:
        build_mocap(_options(subject), Window(T=3, delta=2), seed=0)
    msg = str(err.value)
    assert "35_03.amc" in msg and "http://mocap.cs.cmu.edu/subjects/35/" in msg and str(subject) in msg
    assert "graphdyn data download mocap --subject 35" in msg


def test_paper_case_defaults_to_walk_trial_files(tmp_path):
    with pytest.raises(GraphdynError) as err:
        build_mocap({"case": "walk", "data_dir": str(tmp_path)}, Window(), seed=0)
    assert "35.asf" in str(err.value) and str(tmp_path / "mocap" / "35") in str(err.value)


def test_trial_too_short_for_pool(subject):
    with pytest.raises(GraphdynError, match="35_01.amc.*need"):
        build_mocap(_options(subject, start_pool=40), Window(T=3, delta=2), seed=0)


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"split": {"train": [0], "val": [1], "test": [9]}}, "out of range"),
        ({"split": {"train": [0], "val": [0], "test": [1]}}, "twice"),
        ({"starts_per_trial": 9}, "cannot be drawn"),
        ({"case": "basketball"}, "subject 102"),
        ({"frames": 3}, "unknown key 'data.options.frames'"),
    ],
)
def test_bad_options(subject, extra, match):
    with pytest.raises(GraphdynError, match=match):
        build_mocap(_options(subject, **extra), Window(T=3, delta=2), seed=0)


def test_own_files_need_a_split_and_skip_nothing(subject):
    amc = [f"{stem}.amc" for stem, _, _ in TRIALS]
    with pytest.raises(GraphdynError, match="split"):
        build_mocap({"asf": "35.asf", "amc": amc, "data_dir": str(subject)}, Window(T=3, delta=2), seed=0)
    data = build_mocap(
        {"asf": "35.asf", "amc": amc, "data_dir": str(subject), "split": SPLIT}, Window(T=3, delta=2), seed=0
    )
    # no paper special case for user files; default pool = every start of the shortest trial
    assert data.description["split"]["skip_first"] == {}
    assert data.val.traj.n_frames == 47
    pool = 39 - 6
    assert data.description["split"]["start_pool"] == pool and len(data.train) == 2 * pool
