"""Windowing a :class:`Trajectory` into samples, and dense batches of them.

A sample starting at frame ``s`` of run ``r`` observes ``T`` frames spaced ``delta`` apart,
``s, s+delta, ..., s+(T-1)*delta``, and its target is frame ``s + T*delta``. ``T = 1``,
``delta = 1`` is the notebook's frame-to-frame task.

A dataset with ``horizon = K`` (default 1) also hands out the ``K`` frames after the window,
``s + (T - 1 + k) * delta`` for ``k = 1 .. K``, as ``Batch.future_x`` (and ``future_v``): the
targets of a loss over ``K`` strides (``LearnedSimulator.loss(batch, strides=K)``). Only windows
with all ``K`` future frames inside their run are valid, so ``K > 1`` drops the last ``K - 1``
windows of each run (:meth:`WindowDataset.with_horizon`).

Batches are dense tensors ``[B, T, N, ...]`` gathered with one indexing operation from the
trajectory held as a tensor, and all graphs of a dataset share one edge list, so building a
batch does no per-sample Python work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError


@dataclass
class Batch:
    """A dense batch of windows of one system (``B`` samples, ``T`` frames, ``N`` nodes).

    Shapes (``...`` is ``D`` or ``C, D``)::

        x          [B, T, N, ...]   observed positions
        v          [B, T, N, ...]   observed velocities, or None
        target_x   [B, N, ...]      position at the target frame
        target_v   [B, N, ...]      velocity at the target frame, or None
        node_attr  [B, N, A]        static node features (a broadcast view, no copy)
        edge_index [2, E]           shared by all B graphs; row 0 receiver i, row 1 sender j
        edge_attr  [E, K] or None
        dt         float            time between consecutive observed frames (delta * trajectory dt)
        future_x   [B, K, N, ...]   the K frames after the window (future_x[:, 0] is target_x), or None
        future_v   [B, K, N, ...]   their velocities, or None

    ``future_x`` / ``future_v`` come from a :class:`WindowDataset` (``K`` is its ``horizon``);
    a batch built by hand may leave them out, and then only the one-stride loss applies.
    """

    x: torch.Tensor
    target_x: torch.Tensor
    node_attr: torch.Tensor
    edge_index: torch.Tensor
    dt: float
    v: torch.Tensor | None = None
    target_v: torch.Tensor | None = None
    edge_attr: torch.Tensor | None = None
    future_x: torch.Tensor | None = None
    future_v: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_nodes(self) -> int:
        return int(self.x.shape[2])

    @property
    def horizon(self) -> int:
        """How many frames after the window the batch holds (``future_x``; 1 without it)."""
        return 1 if self.future_x is None else int(self.future_x.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Batch":
        """Move tensors to ``device`` and cast floating tensors to ``dtype`` (``self`` when nothing changes)."""
        dev = None if device is None else torch.device(device)

        def fits(t: torch.Tensor) -> bool:
            same_dev = dev is None or (t.device.type == dev.type and (dev.index is None or t.device.index == dev.index))
            return same_dev and (dtype is None or not t.is_floating_point() or t.dtype == dtype)

        if all(fits(v) for v in (getattr(self, f.name) for f in fields(self)) if isinstance(v, torch.Tensor)):
            return self
        out = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if isinstance(val, torch.Tensor):
                val = val.to(device=device, dtype=dtype if (dtype is not None and val.is_floating_point()) else None)
            out[f.name] = val
        return Batch(**out)

    def with_inputs(self, x: torch.Tensor, v: torch.Tensor | None = None) -> "Batch":
        """The same batch with new observed frames (used by rollouts)."""
        return replace(self, x=x, v=v)


class WindowDataset:
    """All windows ``(run, start)`` of a trajectory, gathered into dense :class:`Batch` es.

    Args:
        traj: the trajectory.
        T: observed frames per sample.
        delta: spacing, in trajectory frames, between observed frames and to the target.
        starts: optional ``[S, 2]`` array of ``(run, start_frame)`` pairs; default all
            windows that fit in every run (with their ``horizon`` future frames).
        dtype: floating dtype of the tensors (float32 by default).
        horizon: frames after the window every batch holds as ``future_x`` (``K`` of a
            ``K``-stride loss); a window must have all of them inside its run.
    """

    def __init__(
        self,
        traj: Trajectory,
        T: int = 1,
        delta: int = 1,
        starts: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
        horizon: int = 1,
    ):
        if T < 1:
            raise GraphdynError(f"T must be at least 1, got {T}", field="T")
        if delta < 1:
            raise GraphdynError(f"delta must be at least 1, got {delta}", field="delta")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise GraphdynError(f"horizon must be a whole number of at least 1, got {horizon!r}", field="horizon")
        span = (T + horizon - 1) * delta
        if span >= traj.n_frames:
            raise GraphdynError(
                f"a window of T={T} frames spaced delta={delta} needs {span + 1} frames; the trajectory has {traj.n_frames}",
                field="T",
            )
        self.traj = traj
        self.T = T
        self.delta = delta
        self.horizon = int(horizon)
        self.dtype = dtype
        if starts is None:
            per_run = np.arange(traj.n_frames - span)
            starts = np.stack(np.meshgrid(np.arange(traj.n_runs), per_run, indexing="ij"), -1).reshape(-1, 2)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 2)
        if len(starts) and (starts[:, 1].max() + span >= traj.n_frames or starts.min() < 0 or starts[:, 0].max() >= traj.n_runs):
            raise GraphdynError("a window start lies outside the trajectory", field="starts")
        self._set_starts(starts)
        # Frames of all runs in one axis, [R * F, N, ...], and every window as a view of them,
        # [R * F - (T + K - 1) delta, T + K, N, ...] with K the horizon (row s holds flat frames
        # s, s + delta, ..., s + (T + K - 1) delta; rows overlap, nothing is copied): a batch is one
        # index_select of its windows' first flat frames. Rows that would straddle two runs exist
        # in the view but are never selected.
        node_shape = traj.positions.shape[2:]
        self._pos = torch.as_tensor(traj.positions, dtype=dtype).reshape(-1, *node_shape)
        self._vel = None if traj.velocities is None else torch.as_tensor(traj.velocities, dtype=dtype).reshape(-1, *node_shape)
        self._win_pos = self._windows(self._pos)
        self._win_vel = None if self._vel is None else self._windows(self._vel)
        self._node_attr = torch.as_tensor(traj.node_attr, dtype=dtype)
        self._edge_index = torch.as_tensor(traj.edge_index, dtype=torch.long)
        self._edge_attr = None if traj.edge_attr is None else torch.as_tensor(traj.edge_attr, dtype=dtype)

    def _set_starts(self, starts: np.ndarray) -> None:
        """``starts`` and the flat frame number of each window's first frame (``_first`` [S], int64)."""
        self.starts = starts
        self._first = torch.as_tensor(starts[:, 0] * self.traj.n_frames + starts[:, 1], dtype=torch.long)

    def _windows(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` [R * F, ...] -> the overlapping view [R * F - (T + K - 1) delta, T + K, ...] of
        all windows with their K = ``horizon`` future frames."""
        s0 = frames.stride(0)
        n = self.T + self.horizon
        size = (frames.shape[0] - (n - 1) * self.delta, n, *frames.shape[1:])
        return frames.as_strided(size, (s0, self.delta * s0, *frames.stride()[1:]))

    @property
    def dt(self) -> float:
        """Time between consecutive observed frames."""
        return self.delta * self.traj.dt

    def __len__(self) -> int:
        return len(self.starts)

    def with_horizon(self, horizon: int) -> "WindowDataset":
        """The windows of this dataset that have ``horizon`` future frames inside their run, each
        batch holding those frames as ``future_x`` (sharing the underlying tensors).

        ``horizon == self.horizon`` returns ``self``; otherwise the windows whose last future
        frame ``start + (T + horizon - 1) * delta`` would fall past the end of the run are
        dropped (none are when the horizon shrinks), in their order.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise GraphdynError(f"horizon must be a whole number of at least 1, got {horizon!r}", field="horizon")
        if horizon == self.horizon:
            return self
        new = object.__new__(WindowDataset)
        new.__dict__.update(self.__dict__)
        new.horizon = int(horizon)
        new._win_pos = new._windows(new._pos)
        new._win_vel = None if new._vel is None else new._windows(new._vel)
        keep = self.starts[:, 1] + (self.T + horizon - 1) * self.delta < self.traj.n_frames
        new._set_starts(self.starts[keep])
        return new

    def subset(self, idx: np.ndarray) -> "WindowDataset":
        """The windows at positions ``idx`` (sharing the underlying tensors)."""
        new = object.__new__(WindowDataset)
        new.__dict__.update(self.__dict__)
        new._set_starts(self.starts[np.asarray(idx)])
        return new

    def split(self, fractions: tuple[float, ...], *, seed: int | None = 0, chronological: bool = False) -> list["WindowDataset"]:
        """Split the windows by fractions (e.g. ``(0.8, 0.1, 0.1)``).

        ``chronological`` keeps window order (train first); otherwise windows are shuffled
        with ``seed`` first.
        """
        if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
            raise GraphdynError(f"split fractions must be non-negative and sum to at most 1, got {fractions}", field="split")
        n = len(self)
        order = np.arange(n) if chronological else np.random.default_rng(seed).permutation(n)
        bounds = np.round(np.cumsum([0.0, *fractions]) * n).astype(np.int64)  # cumulative: fractions summing to 1 cover all
        return [self.subset(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def batch(self, idx: np.ndarray | torch.Tensor | slice | None = None) -> Batch:
        """Gather windows ``idx`` (all when None) into one dense batch."""
        if idx is None:
            first = self._first
        else:  # numpy-style indices: integer arrays (negative ones too), boolean masks, slices
            first = self._first[idx if isinstance(idx, slice) else torch.as_tensor(idx)].reshape(-1)
        B = len(first)
        window = self._win_pos.index_select(0, first)  # [B, T+K, N, ...]
        vel = None if self._win_vel is None else self._win_vel.index_select(0, first)
        return Batch(
            x=window[:, : self.T],
            target_x=window[:, self.T],
            v=None if vel is None else vel[:, : self.T],
            target_v=None if vel is None else vel[:, self.T],
            node_attr=self._node_attr.expand(B, *self._node_attr.shape),
            edge_index=self._edge_index,
            edge_attr=self._edge_attr,
            dt=self.dt,
            future_x=window[:, self.T :],
            future_v=None if vel is None else vel[:, self.T :],
        )

    def describe(self) -> dict:
        return {"T": self.T, "delta": self.delta, "samples": len(self), "dt": self.dt, "horizon": self.horizon}


class WindowLoader:
    """Iterate a :class:`WindowDataset` in dense batches.

    Shuffling is seeded and re-drawn every epoch: the order of epoch ``e`` is a function of
    ``(seed, e)`` alone. Call :meth:`set_epoch` before iterating (the training module does, with
    the trainer's epoch, so a resumed run sees the orders of an uninterrupted one); without it
    the loader counts the passes it has made. Under ``torch.distributed`` each process
    takes every ``world_size``-th sample of the same permutation (padded by wrapping round to
    equal shares), so processes see disjoint data and run the same number of steps.

    When one batch holds the whole dataset (full-batch training in a single process), the
    loader gathers it once and yields that batch every epoch: shuffling would only permute its
    rows, which leaves a mean loss and its gradient unchanged (up to summation order).
    """

    def __init__(
        self,
        dataset: WindowDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise GraphdynError(f"batch_size must be at least 1, got {batch_size}", field="batch_size")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self._full: Batch | None = None  # the whole dataset as one batch, when that is what every epoch yields

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass as epoch ``epoch`` (counting from 0)."""
        self.epoch = int(epoch)

    def _rank_world(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _shard(self, order: np.ndarray) -> np.ndarray:
        """This process's share of ``order``: every rank gets the same number of samples
        (the order is wrapped round to a multiple of the world size, as PyTorch's
        DistributedSampler does), so all ranks run the same number of steps."""
        rank, world = self._rank_world()
        if world == 1:
            return order
        per_rank = math.ceil(len(order) / world)
        return np.resize(order, per_rank * world)[rank::world]

    def _n_batches(self, n_local: int) -> int:
        return n_local // self.batch_size if self.drop_last else math.ceil(n_local / self.batch_size)

    def __len__(self) -> int:
        return self._n_batches(len(self._shard(np.arange(len(self.dataset)))))

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.dataset)
        if n and self.batch_size >= n and self._rank_world()[1] == 1:
            self.epoch += 1
            if self._full is None:
                self._full = self.dataset.batch()
            yield self._full
            return
        epoch, self.epoch = self.epoch, self.epoch + 1
        if self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(n)
        else:
            order = np.arange(n)
        order = self._shard(order)
        for b in range(self._n_batches(len(order))):
            yield self.dataset.batch(order[b * self.batch_size : (b + 1) * self.batch_size])
