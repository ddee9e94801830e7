"""Rollout animations: frame count and size, stride, the MP4 / GIF choice, the fixed view."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from graphdyn import Trajectory
from graphdyn.errors import GraphdynError
from graphdyn.viz import animate
from graphdyn.viz.animate import animate_rollout, animation_format, auto_stride, render_frames, view_of
from graphdyn.viz.topology import topology_of

iio = pytest.importorskip("imageio.v3")


def chain(dim: int, frames: int = 7, nodes: int = 3):
    """A small spring chain's frames and topology (bonds 0-1, 1-2)."""
    rng = np.random.default_rng(dim)
    x = np.cumsum(rng.normal(scale=0.1, size=(frames, nodes, dim)), axis=0) + np.arange(nodes)[:, None]
    ei = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    traj = Trajectory(positions=x[None], edge_index=ei, dt=0.1, metadata={"system": {"kind": "springs"}})
    return x, topology_of(traj)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_gif_has_the_expected_frames_and_size(dim, tmp_path):
    x, top = chain(dim)
    out = animate_rollout(tmp_path / "a.gif", x + 0.05, x, top, stride=2, panel_px=64, fps=4)
    assert out.path == tmp_path / "a.gif" and out.fallback is None
    images = iio.imread(out.path, index=None)
    assert images.shape[:3] == (4, 64, 128) == (out.frames, out.size[1], out.size[0])  # frames 0, 2, 4, 6
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]


def test_default_stride_keeps_at_most_max_frames():
    assert auto_stride(501, 150) == 4 and auto_stride(10, 150) == 1 and auto_stride(300, 150) == 2
    assert len(range(0, 501, auto_stride(501, 150))) <= 150


def test_mp4_written_when_imageio_ffmpeg_imports(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.ModuleType("imageio_ffmpeg"))
    seen = []

    def fake_mp4(path, images, fps):
        seen.extend(images)
        path.write_bytes(b"mp4")
        return len(seen)

    monkeypatch.setattr(animate, "_write_mp4", fake_mp4)
    x, top = chain(2, frames=5)
    out = animate_rollout(tmp_path / "a.mp4", x, x, top, panel_px=40, fps=3)
    assert out.path == tmp_path / "a.mp4" and out.fallback is None and (tmp_path / "a.mp4").read_bytes() == b"mp4"
    assert len(seen) == out.frames == 5 and seen[0].shape == (48, 96, 3)  # 40 px rounded up to a 16-pixel block


def test_mp4_without_ffmpeg_falls_back_to_gif_with_one_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    x, top = chain(2, frames=3)
    out = animate_rollout(tmp_path / "a.mp4", x, x, top, panel_px=32)
    assert out.path == tmp_path / "a.gif" and not (tmp_path / "a.mp4").exists()
    assert "pip install graphdyn[video]" in out.fallback and "a.gif" in out.fallback and "\n" not in out.fallback
    assert iio.imread(out.path, index=None).shape[0] == 3


def test_failed_rendering_leaves_no_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        yield np.zeros((32, 64, 3), np.uint8)
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(animate, "render_frames", broken)
    x, top = chain(2, frames=3)
    with pytest.raises(RuntimeError, match="renderer broke"):
        animate_rollout(tmp_path / "a.gif", x, x, top, panel_px=32)
    assert list(tmp_path.iterdir()) == []


def test_bad_requests(tmp_path):
    x, top = chain(2)
    with pytest.raises(GraphdynError, match="--animate.*unknown animation format .avi"):
        animation_format(tmp_path / "a.avi")
    with pytest.raises(GraphdynError, match="same non-empty shape"):
        animate_rollout(tmp_path / "a.gif", x[:3], x, top)
    with pytest.raises(GraphdynError, match="fps"):
        animate_rollout(tmp_path / "a.gif", x, x, top, fps=0)


def test_3d_view_is_the_plane_of_the_truth():
    # points on a tilted plane: projecting on the view loses no distance
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(3, 3)))[0][:, :2]
    pts = (rng.normal(size=(4, 10, 2)) * [3.0, 1.0]) @ basis.T + [1.0, -2.0, 0.5]
    centre, axes, _ = view_of(pts, 3)
    assert np.allclose(axes.T @ axes, np.eye(2), atol=1e-12)
    flat = (pts - centre) @ axes
    d3 = np.linalg.norm(pts[0, :, None] - pts[0, None], axis=-1)
    d2 = np.linalg.norm(flat[0, :, None] - flat[0, None], axis=-1)
    assert np.allclose(d2, d3, atol=1e-9)


def test_frames_differ_when_the_prediction_moves():
    x, top = chain(2, frames=2)
    still = list(render_frames(x, x, top, np.array([0, 1]), panel_px=32))
    moved = list(render_frames(x + 0.3, x, top, np.array([0, 1]), panel_px=32))
    right = slice(32, 64)  # the truth panel is the same in both, the prediction panel is not
    assert np.array_equal(still[1][8:, right], moved[1][8:, right]) and not np.array_equal(still[1][:, :32], moved[1][:, :32])
