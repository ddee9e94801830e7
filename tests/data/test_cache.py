"""The prepared-trajectory cache: keyed by content and options, never stale, atomic."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from graphdyn.data.cache import cache_key, cache_path, data_dir, file_sha256, load_or_build
from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError


def make_traj(value: float) -> Trajectory:
    pos = np.full((1, 4, 2, 3), value)
    return Trajectory(positions=pos, edge_index=np.array([[0, 1], [1, 0]]), dt=0.5)


class Builder:
    """Counts calls, so tests can tell a cache hit from a rebuild."""

    def __init__(self, value: float):
        self.value = value
        self.calls = 0

    def __call__(self) -> Trajectory:
        self.calls += 1
        return make_traj(self.value)


def test_data_dir_override_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHDYN_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("GRAPHDYN_DATA")
    assert data_dir().parts[-2:] == (".cache", "graphdyn")


def test_file_sha256_is_the_content_hash_and_follows_edits(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    path.write_bytes(b"abcd" * 1000)  # new size: the memo must not answer
    assert file_sha256(path) == hashlib.sha256(b"abcd" * 1000).hexdigest()
    with pytest.raises(GraphdynError, match="cannot read"):
        file_sha256(tmp_path / "absent")


def test_key_depends_on_sources_options_and_version_not_order():
    base = cache_key("md17", 1, {"source": "aa"}, {"a": 1, "b": 2})
    assert base == cache_key("md17", 1, {"source": "aa"}, {"b": 2, "a": 1})
    assert base != cache_key("md17", 1, {"source": "ab"}, {"a": 1, "b": 2})
    assert base != cache_key("md17", 1, {"source": "aa"}, {"a": 1, "b": 3})
    assert base != cache_key("md17", 2, {"source": "aa"}, {"a": 1, "b": 2})
    assert base != cache_key("adk", 1, {"source": "aa"}, {"a": 1, "b": 2})


def test_hit_after_build(tmp_path):
    build = Builder(1.0)
    traj, status = load_or_build("d", "k1", build, cache_dir=tmp_path)
    assert status == "built" and cache_path(tmp_path, "d", "k1").exists()
    again, status = load_or_build("d", "k1", build, cache_dir=tmp_path)
    assert status == "hit" and build.calls == 1
    np.testing.assert_array_equal(again.positions, traj.positions)
    assert again.metadata["cache_key"] == "k1"


def test_changed_source_never_reuses_the_old_entry(tmp_path):
    src = tmp_path / "source.npz"
    src.write_bytes(b"version 1")
    key1 = cache_key("d", 1, {"source": file_sha256(src)}, {})
    load_or_build("d", key1, Builder(1.0), cache_dir=tmp_path / "c")
    src.write_bytes(b"version 2, edited in place")
    key2 = cache_key("d", 1, {"source": file_sha256(src)}, {})
    assert key2 != key1
    traj, status = load_or_build("d", key2, Builder(2.0), cache_dir=tmp_path / "c")
    assert status == "built" and traj.positions.max() == 2.0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_key"])
def test_corrupt_entry_is_rebuilt(tmp_path, damage):
    path = cache_path(tmp_path, "d", "k")
    load_or_build("d", "k", Builder(1.0), cache_dir=tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "garbage":
        path.write_text("not an npz")
    else:  # a valid trajectory stored under another key's name
        make_traj(9.0).save(path)
    build = Builder(3.0)
    with pytest.warns(UserWarning, match="rebuilding"):
        traj, status = load_or_build("d", "k", build, cache_dir=tmp_path)
    assert status == "rebuilt" and build.calls == 1 and traj.positions.max() == 3.0
    assert load_or_build("d", "k", build, cache_dir=tmp_path)[1] == "hit"


def test_failed_build_writes_nothing(tmp_path):
    def fail() -> Trajectory:
        raise GraphdynError("bad input")

    with pytest.raises(GraphdynError, match="bad input"):
        load_or_build("d", "k", fail, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_disabled_and_unwritable(tmp_path):
    traj, status = load_or_build("d", "k", Builder(1.0), cache_dir=None)
    assert status == "disabled" and traj.metadata["cache_key"] == "k"
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write cache"):
        traj, status = load_or_build("d", "k", Builder(1.0), cache_dir=blocker / "cache")
    assert status == "unwritable" and traj.positions.max() == 1.0

