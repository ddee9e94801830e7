import numpy as np
import pytest
import torch

from graphdyn import GraphdynError, Trajectory, WindowDataset
from graphdyn.data.windows import WindowLoader


def _tagged(runs=2, frames=30, nodes=4):
    """Positions tagged by run, frame and node so that any mix-up is visible."""
    r, f, n = np.meshgrid(np.arange(runs), np.arange(frames), np.arange(nodes), indexing="ij")
    pos = np.stack([r, f, n], -1).astype(float)
    return Trajectory(positions=pos, velocities=pos + 0.5, edge_index=np.array([[0, 1], [1, 0]]), dt=0.1)


def test_windows_take_the_right_frames():
    ds = WindowDataset(_tagged(), T=3, delta=4)
    assert len(ds) == 2 * (30 - 12)
    b = ds.batch(np.array([0, len(ds) - 1]))
    assert b.x.shape == (2, 3, 4, 3) and b.target_x.shape == (2, 4, 3)
    # first window: run 0, frames 0, 4, 8 -> target 12; last: run 1, start 17
    assert b.x[0, :, 0, 1].tolist() == [0, 4, 8] and b.target_x[0, 0, 1] == 12
    assert b.x[1, :, 2, 0].tolist() == [1, 1, 1] and b.x[1, :, 0, 1].tolist() == [17, 21, 25] and b.target_x[1, 0, 1] == 29
    assert torch.equal(b.x[:, :, :, 2], torch.arange(4.0).expand(2, 3, 4))  # node axis intact
    assert torch.allclose(b.v, b.x + 0.5) and b.dt == pytest.approx(0.4)


def test_window_longer_than_trajectory_is_an_error():
    with pytest.raises(GraphdynError, match="needs 31 frames"):
        WindowDataset(_tagged(frames=30), T=10, delta=3)


def test_split_is_disjoint_and_seeded():
    ds = WindowDataset(_tagged(), T=1)
    a = ds.split((0.5, 0.25, 0.25), seed=3)
    b = ds.split((0.5, 0.25, 0.25), seed=3)
    keys = [set(map(tuple, s.starts)) for s in a]
    assert sum(len(k) for k in keys) == len(ds) and not (keys[0] & keys[1]) and not (keys[1] & keys[2])
    assert all(np.array_equal(x.starts, y.starts) for x, y in zip(a, b))
    chrono = ds.split((0.5, 0.5), chronological=True)
    assert chrono[0].starts[-1, 1] < chrono[1].starts[0, 1] or chrono[0].starts[-1, 0] < chrono[1].starts[0, 0]


def test_loader_covers_every_window_once_per_epoch():
    ds = WindowDataset(_tagged(), T=2)
    loader = WindowLoader(ds, batch_size=7, shuffle=True, seed=1)
    seen = torch.cat([torch.stack([b.x[:, 0, 0, 0], b.x[:, 0, 0, 1]], -1) for b in loader])
    assert len(loader) == int(np.ceil(len(ds) / 7)) and seen.shape[0] == len(ds)
    assert len({tuple(r) for r in seen.tolist()}) == len(ds)
    first_epoch = seen
    second = torch.cat([torch.stack([b.x[:, 0, 0, 0], b.x[:, 0, 0, 1]], -1) for b in loader])
    assert not torch.equal(first_epoch, second)  # reshuffled every epoch


def test_full_batch_loader_gathers_once_and_yields_every_window():
    ds = WindowDataset(_tagged(), T=2)
    loader = WindowLoader(ds, batch_size=len(ds) + 5, shuffle=True, seed=1)
    epochs = [list(loader) for _ in range(3)]
    assert all(len(e) == 1 for e in epochs) and len(loader) == 1
    assert epochs[0][0] is epochs[1][0] is epochs[2][0]  # gathered once, not per epoch
    ref = ds.batch()
    torch.testing.assert_close(epochs[0][0].x, ref.x)
    torch.testing.assert_close(epochs[0][0].target_x, ref.target_x)
    assert loader.epoch == 3


def test_batch_takes_numpy_style_indices_and_every_run_end():
    """Each window, picked by integer arrays (negative too), lists, masks or slices, holds frames
    s, s + delta, ..., s + T delta of its own run, also for the last windows of each run."""
    traj = _tagged(runs=3, frames=20)
    ds = WindowDataset(traj, T=2, delta=3)
    pos, vel = torch.as_tensor(traj.positions, dtype=torch.float32), torch.as_tensor(traj.velocities, dtype=torch.float32)

    def expected(k):
        run, s = ds.starts[k]
        return pos[run, s : s + 7 : 3], vel[run, s : s + 7 : 3]

    last_of_run = [r * (20 - 6) + 13 for r in range(3)]
    cases = {
        "array": np.array([5, 0, *last_of_run]),
        "negative": np.array([-1, -len(ds)]),
        "list": [2, 2, 40],
        "mask": np.arange(len(ds)) % 5 == 0,
        "slice": slice(10, 30, 4),
    }
    for name, idx in cases.items():
        ks = np.arange(len(ds))[idx]
        b = ds.batch(idx)
        assert b.x.shape == (len(ks), 2, 4, 3), name
        for row, k in enumerate(ks):
            p, v = expected(k)
            assert torch.equal(b.x[row], p[:2]) and torch.equal(b.target_x[row], p[2]), (name, k)
            assert torch.equal(b.v[row], v[:2]) and torch.equal(b.target_v[row], v[2]), (name, k)
    sub = ds.subset(np.array(last_of_run))
    assert torch.equal(sub.batch().target_x, torch.stack([expected(k)[0][2] for k in last_of_run]))


def test_horizon_hands_out_the_future_frames_of_every_window():
    """horizon=K: future_x[:, k] is frame s + (T + k) delta of the window's own run (k = 0 .. K-1),
    future_x[:, 0] is the target, and only windows with all K frames inside their run exist."""
    traj = _tagged(runs=2, frames=30)
    one = WindowDataset(traj, T=3, delta=2)
    ds = WindowDataset(traj, T=3, delta=2, horizon=4)
    assert ds.horizon == 4 and len(ds) == 2 * (30 - (3 + 4 - 1) * 2) == len(one) - 2 * 3 * 2
    b = ds.batch()
    assert b.future_x.shape == (len(ds), 4, 4, 3) and b.future_v.shape == b.future_x.shape and b.horizon == 4
    runs, starts = ds.starts[:, 0], ds.starts[:, 1]
    for k in range(4):
        assert b.future_x[:, k, 0, 1].tolist() == (starts + (3 + k) * 2).tolist()
        assert b.future_x[:, k, 0, 0].tolist() == runs.tolist()
    assert torch.equal(b.future_x[:, 0], b.target_x) and torch.equal(b.future_v[:, 0], b.target_v)
    assert torch.equal(b.future_v, b.future_x + 0.5)
    assert b.future_x[:, -1, 0, 1].max() == 29  # the last window of each run ends on the run's last frame
    one_b = one.batch()
    assert one_b.horizon == 1 and torch.equal(one_b.future_x[:, 0], one_b.target_x)


def test_with_horizon_drops_only_the_windows_without_k_future_frames():
    traj = _tagged(runs=2, frames=30)
    ds = WindowDataset(traj, T=2, delta=3, starts=np.array([[0, 0], [1, 23], [0, 20], [1, 5], [0, 23]]))
    assert ds.with_horizon(1) is ds  # K = 1 keeps every window
    k2 = ds.with_horizon(2)  # needs start + 3 * 3 <= 29
    assert k2.starts.tolist() == [[0, 0], [0, 20], [1, 5]] and k2.horizon == 2 and ds.horizon == 1
    assert k2.batch().future_x[:, 1, 0, 1].tolist() == [9, 29, 14]
    assert ds.with_horizon(4).starts.tolist() == [[0, 0], [1, 5]]
    assert k2.with_horizon(1).starts.tolist() == k2.starts.tolist()  # shrinking drops nothing
    with pytest.raises(GraphdynError, match="outside the trajectory"):  # explicit starts must fit their horizon
        WindowDataset(traj, T=2, delta=3, starts=np.array([[0, 23]]), horizon=2)
    with pytest.raises(GraphdynError, match="horizon must be a whole number"):
        ds.with_horizon(0)
