import numpy as np
import pytest

from graphdyn import GraphdynError, Trajectory


def _traj(**kw):
    args = dict(positions=np.random.randn(2, 5, 4, 3), edge_index=np.array([[0, 1], [1, 0]]), dt=0.1)
    args.update(kw)
    return Trajectory(**args)


def test_round_trip_keeps_every_field(tmp_path):
    t = _traj(velocities=np.random.randn(2, 5, 4, 3), energy=np.random.randn(2, 5), edge_attr=np.ones((2, 1)),
              units={"length": "A"}, metadata={"k": [1.0, 2.0]})
    path = t.save(tmp_path / "t.npz")
    back = Trajectory.load(path)
    np.testing.assert_array_equal(back.positions, t.positions)
    np.testing.assert_array_equal(back.velocities, t.velocities)
    np.testing.assert_array_equal(back.energy, t.energy)
    assert back.units == {"length": "A"} and back.metadata == {"k": [1.0, 2.0]}
    assert back.dt == 0.1 and back.checksum() == t.checksum()
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary file left


def test_multichannel_and_from_frames():
    t = Trajectory.from_frames(np.zeros((7, 5, 4, 3)), multichannel=True, edge_index=np.zeros((2, 0), int), dt=1.0)
    assert (t.n_runs, t.n_frames, t.n_nodes, t.n_channels, t.dim) == (1, 7, 5, 4, 3)
    assert t.node_attr.shape == (5, 1)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(positions=np.zeros((5, 4, 3))), "positions"),
        (dict(positions=np.zeros((1, 5, 4, 7))), "positions"),
        (dict(positions=np.full((1, 5, 4, 3), np.nan)), "positions"),
        (dict(edge_index=np.array([[0, 9], [1, 0]])), "edge_index"),
        (dict(velocities=np.zeros((2, 5, 4, 2))), "velocities"),
        (dict(dt=-1.0), "dt"),
        (dict(node_attr=np.zeros((3, 1))), "node_attr"),
    ],
)
def test_bad_fields_name_the_field(kw, field):
    with pytest.raises(GraphdynError) as exc:
        _traj(**kw)
    assert exc.value.field == field and field in str(exc.value)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(GraphdynError, match="file not found"):
        Trajectory.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GraphdynError, match="bad.npz"):
        Trajectory.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, R=np.zeros((2, 3, 3)))
    with pytest.raises(GraphdynError, match="not a graphdyn trajectory"):
        Trajectory.load(other)


def test_nan_in_saved_file_is_reported_with_file_and_field(tmp_path):
    t = _traj()
    path = t.save(tmp_path / "t.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["positions"][0, 2, 1, 0] = np.nan
    np.savez(path, **arrays)
    with pytest.raises(GraphdynError) as exc:
        Trajectory.load(path)
    assert "t.npz" in str(exc.value) and "positions" in str(exc.value) and "NaN" in str(exc.value)


def test_select_runs_and_frames():
    t = _traj(velocities=np.random.randn(2, 5, 4, 3))
    s = t.select_runs([1]).select_frames(slice(1, 3))
    assert s.positions.shape == (1, 2, 4, 3)
    np.testing.assert_array_equal(s.velocities, t.velocities[1:2, 1:3])
