"""Animations of a rollout: prediction and truth side by side, for any system.

Each frame is a matplotlib figure with two panels (prediction left, truth right) rendered to
an array (``canvas.buffer_rgba()``) and written with imageio: MP4 when imageio-ffmpeg
imports (the ``video`` extra, ``pip install graphdyn[video]``), else GIF (Pillow). A
requested ``.mp4`` without it becomes a ``.gif`` beside it, and :class:`Animation` says so.

What is drawn, from the :class:`~graphdyn.viz.topology.Topology`:

* 1-D particles on a line, 2-D as they are, 3-D projected on a fixed view: the two
  principal axes of the truth's atoms over all frames (the plane of largest spread), so the
  view never moves and prediction and truth share it;
* lines along the bonds: molecular bonds, AdK backbone bonds, skeleton bones, springs;
* atoms coloured by element for molecules and proteins, by node for particles.

Axis limits come from the truth (with a margin) and stay fixed, so motion is visible and a
prediction that drifts away leaves the box. Long rollouts keep every ``stride``-th frame
(by default at most :data:`DEFAULT_MAX_FRAMES`). Library code only: nothing is shown on a
screen and no global matplotlib state is touched (a ``Figure`` with its own Agg canvas).

Shapes: ``pred``, ``true`` ``[F, N, (C,) D]``, frames ``0 .. steps`` of one rollout (frame 0
the last observed state); a written frame is ``[H, W, 3]`` uint8 with ``W = 2 H``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphdyn.errors import GraphdynError
from graphdyn.io import atomic_path
from graphdyn.viz.topology import Topology

ANIMATION_FORMATS = ("mp4", "gif")
VIDEO_EXTRA = "pip install graphdyn[video]"
DEFAULT_MAX_FRAMES = 150
_DPI = 80
_BLOCK = 16  # video encoders work on 16-pixel blocks: frame sizes are multiples of it
_ELEMENT_COLORS = {"C": "#4d4d4d", "N": "#3050f8", "O": "#e8170d", "S": "#d9a400", "P": "#ff8000", "H": "#bfbfbf"}


@dataclass(frozen=True)
class Animation:
    """What :func:`animate_rollout` wrote: the file, its frame count and size, the rollout
    strides it shows, and a note when a requested MP4 became a GIF."""

    path: Path
    frames: int
    size: tuple[int, int]  # (width, height) in pixels
    stride: int
    fallback: str | None = None

    def describe(self) -> str:
        return f"wrote {self.path}: {self.frames} frames of {self.size[0]}x{self.size[1]} px (every {self.stride} rollout stride{'s' if self.stride > 1 else ''})"


def animation_format(path: str | Path, option: str = "--animate") -> str:
    """``"mp4"`` or ``"gif"`` from ``path``'s suffix, else a one-line :class:`GraphdynError`
    naming ``option``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ANIMATION_FORMATS:
        raise GraphdynError(
            f"unknown animation format {('.' + suffix) if suffix else '(no suffix)'}; use .mp4 "
            f"(needs imageio-ffmpeg: {VIDEO_EXTRA}; else a .gif is written) or .gif",
            path=path, field=option,
        )
    return suffix


def ffmpeg_available() -> bool:
    """True when imageio-ffmpeg imports (then MP4 can be written)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def auto_stride(n_frames: int, max_frames: int = DEFAULT_MAX_FRAMES) -> int:
    """The smallest stride that keeps at most ``max_frames`` of ``n_frames``."""
    return max(1, -(-int(n_frames) // max(1, int(max_frames))))


def view_of(true_atoms: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    """A fixed 2-D view of 3-D atoms ``[F, A, 3]``: ``(centre [3], axes [3, 2], labels)``.

    1-D data: the x axis (drawn on a line); 2-D: x and y; 3-D: the two principal axes of the
    truth's finite coordinates (eigenvectors of their covariance with the largest
    eigenvalues, signs fixed so the largest component is positive).
    """
    pts = true_atoms.reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    centre = pts.mean(axis=0) if len(pts) else np.zeros(3)
    if dim < 3:
        axes = np.eye(3)[:, :2]
        return np.concatenate([centre[:dim], np.zeros(3 - dim)]), axes, ("x", "" if dim == 1 else "y")
    cov = np.cov((pts - centre).T) if len(pts) > 1 else np.eye(3)
    _, vecs = np.linalg.eigh(cov)
    axes = vecs[:, ::-1][:, :2].copy()
    flip = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    axes *= np.where(flip == 0, 1.0, flip)
    return centre, axes, ("first principal axis", "second principal axis")


def _limits(xy: np.ndarray, dim: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Fixed axis limits around the projected truth ``[F, A, 2]``."""
    pts = xy.reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    lo, hi = (pts.min(0), pts.max(0)) if len(pts) else (np.full(2, -1.0), np.full(2, 1.0))
    if dim == 1:
        half = max((hi[0] - lo[0]) / 2 * 1.15, 1e-6)
        mid = (hi[0] + lo[0]) / 2
        return (mid - half, mid + half), (-1.0, 1.0)
    half = max(float((hi - lo).max()) / 2 * 1.15, 1e-6)  # square box: equal scale on both axes
    mid = (hi + lo) / 2
    return (mid[0] - half, mid[0] + half), (mid[1] - half, mid[1] + half)


def _colors(topology: Topology) -> list[str]:
    if topology.kind in ("molecule", "protein"):
        return [_ELEMENT_COLORS.get(el, "#9b59b6") for el in topology.elements]
    if topology.kind == "skeleton":
        return ["#1f77b4"] * topology.n_atoms
    cycle = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
    return [cycle[int(r) % len(cycle)] for r in topology.atom_resindex]


def render_frames(
    pred: np.ndarray,
    true: np.ndarray,
    topology: Topology,
    frames: np.ndarray,
    *,
    panel_px: int = 320,
    labels: tuple[str, str] = ("prediction", "truth"),
    title: str = "",
) -> Iterator[np.ndarray]:
    """Yield one ``[panel_px, 2 * panel_px, 3]`` uint8 image per index of ``frames``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    p_atoms, t_atoms = topology.atom_positions(pred), topology.atom_positions(true)
    centre, axes, axis_labels = view_of(t_atoms, topology.dim)
    short = topology.length_unit and len(topology.length_unit) <= 12  # "angstrom", "reduced"; not a long description
    unit = f" ({topology.length_unit})" if short else ""
    p_xy, t_xy = (p_atoms - centre) @ axes, (t_atoms - centre) @ axes
    if topology.dim == 1:
        p_xy[..., 1] = t_xy[..., 1] = 0.0
    xlim, ylim = _limits(t_xy, topology.dim)

    fig = Figure(figsize=(2 * panel_px / _DPI, panel_px / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.8, wspace=0.15)
    colors = _colors(topology)
    size = float(np.clip(1500.0 / max(topology.n_atoms, 1), 4.0, 60.0)) * (panel_px / 320) ** 2
    width = 0.6 if topology.n_atoms > 200 else 1.5
    bonds = topology.bonds
    artists = []
    for ax, label in zip(fig.subplots(1, 2), labels):
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel(axis_labels[0] + unit, fontsize=7)
        if axis_labels[1]:
            ax.set_ylabel(axis_labels[1] + unit, fontsize=7)
        if topology.dim == 1:
            ax.set_yticks([])
            ax.axhline(0.0, color="#dddddd", lw=0.8, zorder=0)
        ax.tick_params(labelsize=6)
        lines = LineCollection([], colors="#8c8c8c", linewidths=width, zorder=1)
        ax.add_collection(lines)
        dots = ax.scatter(np.zeros(topology.n_atoms), np.zeros(topology.n_atoms), s=size, c=colors, zorder=2, linewidths=0)
        heading = ax.set_title(label, fontsize=8)
        artists.append((lines, dots, heading, label))
    suptitle = fig.suptitle("", fontsize=8)
    steps = len(pred) - 1
    for k in frames:
        for (lines, dots, heading, label), xy in zip(artists, (p_xy[k], t_xy[k])):
            dots.set_offsets(xy)
            lines.set_segments(np.stack([xy[bonds[:, 0]], xy[bonds[:, 1]]], axis=1) if len(bonds) else [])
            heading.set_text(label if np.isfinite(xy).all() else f"{label} (non-finite)")
        suptitle.set_text(f"{title}\nrollout stride {int(k)} of {steps}" if title else f"rollout stride {int(k)} of {steps}")
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def animate_rollout(
    path: str | Path,
    pred: np.ndarray,
    true: np.ndarray,
    topology: Topology,
    *,
    fps: int = 10,
    stride: int | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    panel_px: int = 320,
    labels: tuple[str, str] = ("prediction", "truth"),
    title: str = "",
) -> Animation:
    """Write an animation of one rollout, prediction beside truth; see the module docstring.

    Args:
        path: ``.mp4`` or ``.gif`` (an ``.mp4`` becomes a ``.gif`` without imageio-ffmpeg).
        pred, true: ``[F, N, (C,) D]`` frames ``0 .. steps``.
        fps: frames per second of the file.
        stride: show every ``stride``-th rollout frame; None picks the smallest that keeps
            at most ``max_frames``.
        panel_px: height of the frame and width of each panel in pixels (rounded up to a
            multiple of 16 for video encoders).
    """
    path = Path(path)
    fmt = animation_format(path, "path")
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or len(pred) == 0:
        raise GraphdynError(f"prediction {pred.shape} and truth {true.shape} must be the same non-empty shape", field="positions")
    if fps < 1:
        raise GraphdynError(f"must be at least 1, got {fps}", field="fps")
    stride = auto_stride(len(pred), max_frames) if stride is None else int(stride)
    if stride < 1:
        raise GraphdynError(f"must be at least 1, got {stride}", field="stride")
    panel_px = max(_BLOCK, -(-int(panel_px) // _BLOCK) * _BLOCK)
    fallback = None
    if fmt == "mp4" and not ffmpeg_available():
        gif = path.with_suffix(".gif")
        fallback = f"MP4 needs imageio-ffmpeg ({VIDEO_EXTRA}); wrote {gif} instead of {path}"
        path, fmt = gif, "gif"
    frames = np.arange(0, len(pred), stride)
    images = render_frames(pred, true, topology, frames, panel_px=panel_px, labels=labels, title=title)
    with atomic_path(path) as tmp:
        try:
            count = (_write_mp4 if fmt == "mp4" else _write_gif)(tmp, images, fps)
        except GraphdynError:
            raise
        except Exception as exc:
            if fmt != "mp4":
                raise
            # a missing or failing ffmpeg binary: say what to do instead
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise GraphdynError(f"writing MP4 failed ({exc.__class__.__name__}: {text}); ask for a .gif instead", path=path) from None
    return Animation(path, count, (2 * panel_px, panel_px), stride, fallback)


def _write_gif(path: Path, images: Iterable[np.ndarray], fps: int) -> int:
    """A looping GIF through Pillow; returns the frame count."""
    import imageio.v3 as iio

    stack = np.stack(list(images))
    iio.imwrite(path, stack, extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=0)
    return len(stack)


def _write_mp4(path: Path, images: Iterable[np.ndarray], fps: int) -> int:
    """An H.264 MP4 through imageio-ffmpeg, streamed frame by frame; returns the frame count."""
    import imageio.v2 as iio2

    count = 0
    with iio2.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=_BLOCK) as writer:
        for image in images:
            writer.append_data(image)
            count += 1
    return count
