"""Training for stable rollouts: noise on the input frames and a loss over K strides
(LearnedSimulator.add_noise / loss(strides=K), DynamicsModule, training.noise / training.unroll)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spring_chain import notebook_snapshots

from graphdyn import GraphdynError, Trajectory, WindowDataset
from graphdyn.data.windows import Batch
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.models.registry import build_model
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.config import NoiseConfig, UnrollConfig, load_config
from graphdyn.training.module import DynamicsModule
from graphdyn.training.run import prepare
from tests.models.test_all_models import LAYOUTS, _batch, _cases, _info

TARGETS = ("position", "displacement", "velocity_change", "acceleration")


def chain_trajectory(frames: int = 40, runs: int = 2, dt: float = 0.05) -> Trajectory:
    """The notebook's 3-mass spring chain integrated with its own semi-implicit Euler, so that
    x_t - x_{t-1} = v_t dt holds exactly in every run."""
    snap = notebook_snapshots(runs, seed=3, dt=dt)
    x, v = snap.positions[:, 0], snap.velocities[:, 0]  # [R, 3, 1]
    xs, vs = [x], [v]
    for _ in range(frames - 1):
        a = np.zeros_like(x)
        a[:, 0] = -(x[:, 0] - x[:, 1])
        a[:, 1] = -(x[:, 1] - x[:, 0]) - (x[:, 1] - x[:, 2])
        a[:, 2] = -(x[:, 2] - x[:, 1])
        v = v + a * dt
        x = x + v * dt
        xs.append(x)
        vs.append(v)
    return Trajectory(positions=np.stack(xs, 1), velocities=np.stack(vs, 1), edge_index=snap.edge_index, dt=dt)


def chain_acceleration(x: torch.Tensor) -> torch.Tensor:
    a = torch.zeros_like(x)
    a[..., 0, :] = -(x[..., 0, :] - x[..., 1, :])
    a[..., 1, :] = -(x[..., 1, :] - x[..., 0, :]) - (x[..., 1, :] - x[..., 2, :])
    a[..., 2, :] = -(x[..., 2, :] - x[..., 1, :])
    return a


class ChainOracle(DynamicsModel):
    """The true next state of the chain in any target space (a perfect model)."""

    def __init__(self, target: str):
        super().__init__(DataInfo(1, None, 1, 0, 1, 3, True), Params())
        self.target = target
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        x, v = batch.x[:, -1], batch.v[:, -1]
        a = chain_acceleration(x)
        x_next = x + (v + a * batch.dt) * batch.dt
        out = {"acceleration": a, "velocity_change": a * batch.dt, "position": x_next, "displacement": x_next - x}[self.target]
        return out + 0 * self.dummy


class Fixed(DynamicsModel):
    """Returns a given tensor, or a function of the batch (to test what a loss is zero for)."""

    def __init__(self, target: str, fn):
        super().__init__(DataInfo(1, None, 1, 0, 1, 3, True), Params())
        self.target = target
        self.fn = fn
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.fn(batch) + 0 * self.dummy


class Momentum(DynamicsModel):
    """x' = x_{T-1} + a (x_{T-1} - x_{T-2}) + b: a small trainable displacement model that
    records, per call, whether gradients were on and whether its input window carried a graph."""

    target = "displacement"

    def __init__(self):
        super().__init__(DataInfo(1, None, 1, 0, 2, 3, True), Params())
        self.a = torch.nn.Parameter(torch.tensor(0.7))
        self.b = torch.nn.Parameter(torch.tensor(0.01))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, batch: Batch) -> torch.Tensor:
        self.calls.append((torch.is_grad_enabled(), batch.x.requires_grad))
        return self.a * (batch.x[:, -1] - batch.x[:, -2]) + self.b


def chain_batch(T: int = 3, horizon: int = 1, delta: int = 1) -> Batch:
    return WindowDataset(chain_trajectory(), T=T, delta=delta, horizon=horizon, dtype=torch.float64).batch()


def _big_batch(B=20000, T=4, v=True, dt=0.1) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, 3, 2, generator=g, dtype=torch.float64)
    return Batch(x=x, target_x=torch.randn(B, 3, 2, generator=g, dtype=torch.float64), node_attr=torch.zeros(B, 3, 1),
                 edge_index=torch.zeros(2, 0, dtype=torch.long), dt=dt, v=torch.randn_like(x) if v else None,
                 target_v=torch.randn(B, 3, 2, dtype=torch.float64) if v else None)


# ---------------------------------------------------------------------------------- noise
def test_random_walk_noise_accumulates_to_std_on_the_last_frame():
    batch, T, std = _big_batch(), 4, 0.2
    sim = LearnedSimulator(ChainOracle("position"))
    noisy = sim.add_noise(batch, std, "random_walk", generator=torch.Generator().manual_seed(1))
    n = (noisy.x - batch.x).transpose(0, 1).reshape(T, -1)  # per frame, all samples and coordinates
    steps = torch.diff(n, dim=0, prepend=torch.zeros(1, n.shape[1], dtype=n.dtype))
    assert steps.std(1).tolist() == pytest.approx([std / math.sqrt(T)] * T, rel=0.02)  # equal increments
    assert n.std(1).tolist() == pytest.approx([std * math.sqrt((t + 1) / T) for t in range(T)], rel=0.02)  # std on the last
    corr = torch.corrcoef(steps)
    assert (corr - torch.eye(T, dtype=corr.dtype)).abs().max() < 0.02  # independent increments
    assert abs(float(n.mean())) < 0.01 * std


def test_gaussian_noise_is_independent_per_frame():
    batch, T, std = _big_batch(), 4, 0.2
    noisy = LearnedSimulator(ChainOracle("position")).add_noise(batch, std, "gaussian", generator=torch.Generator().manual_seed(1))
    n = (noisy.x - batch.x).transpose(0, 1).reshape(T, -1)
    assert n.std(1).tolist() == pytest.approx([std] * T, rel=0.02)
    assert (torch.corrcoef(n) - torch.eye(T, dtype=n.dtype)).abs().max() < 0.02


@pytest.mark.parametrize("kind", ["random_walk", "gaussian"])
def test_noisy_velocities_keep_the_finite_difference_relation(kind):
    """v'_t - v_t = (n_t - n_{t-1}) / dt for every observed frame: the noisy window obeys
    x_t - x_{t-1} = v_t dt wherever the clean one does (n_{-1} = 0 for the random walk)."""
    batch = chain_batch(T=5)
    noisy = LearnedSimulator(ChainOracle("acceleration").double()).add_noise(batch, 0.05, kind, generator=torch.Generator().manual_seed(2))
    dx = torch.diff(noisy.x, dim=1)
    torch.testing.assert_close(dx, noisy.v[:, 1:] * batch.dt)  # chain data: exact semi-implicit Euler
    n = noisy.x - batch.x
    dv = (noisy.v - batch.v) * batch.dt
    if kind == "random_walk":
        torch.testing.assert_close(dv, torch.diff(n, dim=1, prepend=torch.zeros_like(n[:, :1])))
    else:
        torch.testing.assert_close(dv[:, 1:], torch.diff(n, dim=1))


def test_no_noise_and_the_input_batch_untouched():
    batch = chain_batch(horizon=2)
    sim = LearnedSimulator(ChainOracle("position").double())
    assert sim.add_noise(batch, 0.0) is batch
    saved = {k: v.clone() for k, v in batch.__dict__.items() if isinstance(v, torch.Tensor)}
    for correction in ("velocity", "position"):
        sim.add_noise(batch, 0.1, correction=correction)
    assert all(torch.equal(saved[k], getattr(batch, k)) for k in saved)
    for kw, field in (({"kind": "brownian"}, "kind"), ({"correction": "both"}, "correction"), ({"std": -1.0}, "std"),
                      ({"std": math.nan}, "std")):
        with pytest.raises(GraphdynError) as err:
            sim.add_noise(batch, **{"std": 0.1, **kw})
        assert err.value.field == field


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("correction", ["velocity", "position"])
@pytest.mark.parametrize("kind", ["random_walk", "gaussian"])
def test_corrected_target_is_the_clean_next_frame_or_its_noisy_shift(target, correction, kind):
    """Integrating the corrected target from the noisy window lands on the clean next frame
    (correction "position") or on it moved by the last frame's noise (DeepMind's "velocity"),
    for every target space; the multi-stride targets follow the same rule."""
    batch = chain_batch(T=3, horizon=3)
    sim = LearnedSimulator(ChainOracle(target).double(), target_scale=0.3)
    noisy = sim.add_noise(batch, 0.05, kind, correction, generator=torch.Generator().manual_seed(3))
    shift = (noisy.x - batch.x)[:, -1]
    want = batch.target_x + shift if correction == "velocity" else batch.target_x
    x_next, v_next = sim.integrate(noisy, sim.training_target(noisy) * sim.target_scale)
    torch.testing.assert_close(x_next, want)
    torch.testing.assert_close(noisy.future_x, batch.future_x + (shift[:, None] if correction == "velocity" else 0))
    torch.testing.assert_close(v_next, noisy.target_v)
    torch.testing.assert_close(noisy.future_v[:, 0], noisy.target_v)
    torch.testing.assert_close(noisy.future_v[:, 1:], batch.future_v[:, 1:])  # later strides: clean frame to clean frame


def test_a_model_returning_the_clean_next_position_has_zero_loss_under_position_correction():
    batch = chain_batch(T=3)
    clean = batch.target_x.clone()
    sim = LearnedSimulator(Fixed("position", lambda b: clean).double())
    noisy = sim.add_noise(batch, 0.1, "random_walk", "position", generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(noisy.x, batch.x)
    assert sim.loss(noisy).item() == 0.0
    # DeepMind's correction: zero loss for the clean displacement added to the noisy last frame
    noisy = sim.add_noise(batch, 0.1, "random_walk", "velocity", generator=torch.Generator().manual_seed(4))
    sim = LearnedSimulator(Fixed("position", lambda b: b.x[:, -1] + (clean - batch.x[:, -1])).double())
    assert sim.loss(noisy).item() < 1e-28
    assert sim.loss(noisy.__class__(**{**noisy.__dict__, "target_x": clean})).item() > 1e-6  # and not for the clean frame


# ---------------------------------------------------------------------------------- K strides
def test_one_stride_is_todays_loss_exactly():
    batch = chain_batch(T=3, horizon=3)
    sim = LearnedSimulator(Momentum().double())
    today = torch.nn.functional.mse_loss(sim.model(batch), sim.training_target(batch))
    for kw in ({}, {"strides": 1}, {"strides": 1, "mode": "unrolled"}, {"strides": 1, "weights": [3.0]}):
        assert torch.equal(sim.loss(batch, **kw), today)
    module = DynamicsModule(sim, lr=0.1)
    assert torch.equal(module.training_loss(batch), today)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("mode", ["pushforward", "unrolled"])
def test_a_perfect_model_has_zero_k_stride_loss(target, mode):
    batch = chain_batch(T=2, horizon=4)
    sim = LearnedSimulator(ChainOracle(target).double())
    assert sim.loss(batch, strides=4, mode=mode).item() < 1e-24


@pytest.mark.parametrize("mode", ["pushforward", "unrolled"])
def test_k_stride_loss_is_the_weighted_mean_of_the_rollout_errors(mode):
    """For a displacement model the term of stride k is the position error of the k-th frame of
    its own rollout (LearnedSimulator.rollout, a separate code path)."""
    batch = chain_batch(T=3, horizon=3)
    sim = LearnedSimulator(Momentum().double(), target_scale=0.5)
    pred, _ = sim.rollout(batch, 3)
    errors = ((pred - batch.future_x) ** 2).mean(dim=(0, 2, 3)) / 0.25
    w = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64) / 8
    torch.testing.assert_close(sim.loss(batch, 3, mode, [1, 2, 5]), (w * errors).sum())
    torch.testing.assert_close(sim.loss(batch, 3, mode), errors.mean())
    torch.testing.assert_close(sim.loss(batch, 2, mode), errors[:2].mean())  # K below the batch's horizon


def test_pushforward_blocks_gradients_through_earlier_strides():
    batch = chain_batch(T=3, horizon=3)
    model = Momentum().double()
    sim = LearnedSimulator(model)

    def grads(**kw):
        model.zero_grad()
        model.calls.clear()
        sim.loss(batch, 3, **kw).backward()
        return torch.stack([model.a.grad, model.b.grad]), list(model.calls)

    push, calls = grads(mode="pushforward")
    assert calls == [(True, False)] * 3  # every stride's input window detached
    unrolled, calls = grads(mode="unrolled")
    assert calls == [(True, False), (True, True), (True, True)]
    assert not torch.allclose(push, unrolled)
    last, calls = grads(mode="pushforward", weights=[0, 0, 1])  # Brandstetter's trick: no graph before the last stride
    assert calls == [(False, False), (False, False), (True, False)]
    _, calls = grads(mode="unrolled", weights=[1, 1, 0])  # nothing rolled past the last weighted stride
    assert calls == [(True, False), (True, True)]
    # the same gradient as one stride from the rollout's (detached) window
    with torch.no_grad():
        pred, _ = sim.rollout(batch, 2)
    window = batch.with_inputs(torch.cat([batch.x[:, 2:], pred], 1))
    model.zero_grad()
    torch.nn.functional.mse_loss(model(window), batch.future_x[:, 2] - pred[:, 1]).backward()
    torch.testing.assert_close(last, torch.stack([model.a.grad, model.b.grad]))


def test_k_stride_loss_needs_the_future_frames():
    sim = LearnedSimulator(Momentum().double())
    with pytest.raises(GraphdynError, match="needs the 3 frames after each window; the batch holds 2") as err:
        sim.loss(chain_batch(T=3, horizon=2), 3)
    assert err.value.field == "strides"
    hand = chain_batch(T=3)
    hand.future_x = None
    with pytest.raises(GraphdynError, match="holds 1"):
        sim.loss(hand, 2)
    for kw in ({"weights": [1.0]}, {"weights": [0.0, 0.0]}, {"weights": [1.0, -1.0]}, {"mode": "teacher"}):
        with pytest.raises(GraphdynError):
            sim.loss(chain_batch(T=3, horizon=2), 2, **kw)


# ---------------------------------------------------------------------------------- training
class Recorder(DynamicsModel):
    """A displacement model that records the observed frames of every batch it sees."""

    target = "displacement"

    def __init__(self):
        super().__init__(DataInfo(1, None, 1, 0, 2, 3, True), Params())
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.seen: list[torch.Tensor] = []

    def forward(self, batch):
        self.seen.append(batch.x.detach().clone())
        return self.w * (batch.x[:, -1] - batch.x[:, -2])


def test_noise_and_strides_in_training_steps_only(tmp_path):
    """A fit with noise and K = 2: training windows are noisy and rolled twice; validation and
    test windows are clean and one-stride (val_loss is the plain loss)."""
    import pytorch_lightning as pl

    from graphdyn.data.windows import WindowLoader
    from graphdyn.training.run import _quiet_lightning

    _quiet_lightning()
    ds = WindowDataset(chain_trajectory(), T=3, delta=1)
    train, val = ds.with_horizon(2), ds
    model = Recorder()
    module = DynamicsModule(LearnedSimulator(model), lr=0.0, noise=NoiseConfig(std=0.01), unroll=UnrollConfig(strides=2))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, WindowLoader(train, len(train)), WindowLoader(val, len(val)))
    clean_train, clean_val = train.batch().x.float(), val.batch().x.float()
    train_seen, val_seen = model.seen[:2], model.seen[2:]
    assert len(train_seen) == 2 and len(val_seen) == 2  # two strides in training; loss and step in validation
    n = train_seen[0] - clean_train
    assert 0.003 < float(n.std()) < 0.02  # noise on the training window
    torch.testing.assert_close(train_seen[1][:, :-1], train_seen[0][:, 1:])  # the second stride slides the window
    assert all(torch.equal(v, clean_val) for v in val_seen)
    with torch.no_grad():
        plain = module.simulator.loss(val.batch())
    assert float(trainer.callback_metrics["val_loss"]) == pytest.approx(float(plain), rel=1e-6)


@pytest.mark.parametrize("name,layout", _cases())
def test_every_model_trains_one_step_with_noise_and_k_strides(name, layout):
    batch = _batch(LAYOUTS[layout])
    g = torch.Generator().manual_seed(5)
    batch.future_x = torch.stack([batch.target_x, batch.target_x + 0.1 * torch.randn(batch.target_x.shape, generator=g)], 1)
    batch.future_v = torch.stack([batch.target_v, batch.target_v + 0.1 * torch.randn(batch.target_v.shape, generator=g)], 1)
    torch.manual_seed(0)
    model = build_model(name, {}, _info(LAYOUTS[layout]))
    params = [p for p in model.parameters() if p.requires_grad]
    module = DynamicsModule(LearnedSimulator(model), lr=1e-3, noise=NoiseConfig(std=0.01, kind="random_walk"),
                            unroll=UnrollConfig(strides=2, mode="pushforward" if layout == "single" else "unrolled"))
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss = module.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is None or torch.isfinite(p.grad).all() for p in params)
    if not any(p.grad is not None and p.grad.abs().max() > 0 for p in params):
        pytest.skip(f"{name} has nothing to learn (parameter-free)")
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, params))


# ---------------------------------------------------------------------------------- config and run
TINY = ["data.options.n_train=20", "data.options.n_val=10", "data.options.n_test=10", "data.options.mode=trajectory", "data.options.frames=40",
        "data.T=2", "model.name=st_egnn"]


def test_config_sections_are_strict_and_checked():
    cfg = load_config(None, ["training.noise.std=0.005", "training.noise.kind=gaussian", "training.unroll.strides=3",
                             "training.unroll.weights=[0, 0, 1]"])
    assert cfg.training.noise == NoiseConfig(std=0.005, kind="gaussian", correction="velocity")
    assert cfg.training.unroll.weights == [0, 0, 1] and cfg.training.unroll.mode == "pushforward"
    default = load_config(None, [])
    assert default.training.noise.std == 0 and default.training.unroll.strides == 1
    bad = {"training.noise.sigma=1": "unknown config key 'training.noise.sigma'",
           "training.noise.kind=uniform": "training.noise.kind", "training.noise.std=-1": "training.noise.std",
           "training.noise.std=.inf": "training.noise.std", "training.unroll.mode=teacher": "training.unroll.mode",
           "training.unroll.strides=0": "training.unroll.strides"}
    for override, where in bad.items():
        with pytest.raises(GraphdynError, match=where.replace(".", r"\.")):
            load_config(None, [override])
    with pytest.raises(GraphdynError, match="weights has 2 entries for strides=3") as err:
        load_config(None, ["training.unroll.strides=3", "training.unroll.weights=[1, 1]"])
    assert err.value.field == "training.unroll"


def test_prepare_gives_training_windows_their_k_future_frames():
    one = prepare(load_config(None, TINY))
    three = prepare(load_config(None, TINY + ["training.unroll.strides=3"]))
    assert one.splits.train.horizon == 1 and three.splits.train.horizon == 3
    assert three.splits.val.horizon == three.splits.test.horizon == 1  # evaluation stays one-stride
    assert len(three.splits.val) == len(one.splits.val) and len(three.splits.test) == len(one.splits.test)
    assert 0 < len(three.splits.train) < len(one.splits.train)
    assert three.meta["data"]["samples"]["train"] == len(three.splits.train)
    assert three.splits.train.batch(np.arange(4)).future_x.shape[1] == 3
    with pytest.raises(GraphdynError, match="lower training.unroll.strides") as err:
        prepare(load_config(None, TINY + ["training.unroll.strides=60"]))
    assert err.value.field == "training.unroll.strides"


def test_estag_md17_stable_is_the_paper_recipe_plus_the_unrolled_loss():
    paper, stable = load_config("estag_md17").to_dict(), load_config("estag_md17_stable").to_dict()
    assert stable["training"]["unroll"] == {"strides": 3, "mode": "pushforward", "weights": None}
    assert paper["training"]["unroll"]["strides"] == 1 and paper["training"]["noise"]["std"] == 0
    for cfg in (paper, stable):
        del cfg["name"], cfg["training"]["unroll"]
    assert stable == paper
