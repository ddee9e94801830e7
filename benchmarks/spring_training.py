"""The notebook's training procedure against graphdyn's trainer, on the same data, in one process.

The notebook (``shared/seeds/000_...txt``) trains its spring-chain GNN one sample per
optimizer step, aggregating messages in a Python loop over edges. This script re-implements
that procedure faithfully (same model, same Adam lr 1e-3, same per-sample MSE, 100 epochs) and
runs graphdyn's trainer (``DynamicsModule`` on PyTorch Lightning, dense batches) on the same
snapshots. It reports:

* training throughput (samples per second) of both: graphdyn's as the steady state of a
  200-epoch full-batch fit (after an untimed 20-epoch fit, so that one-off costs -- first calls,
  the thread pool, loading the native kernels -- are not in a run this short);
* the test MSE the notebook reaches after its epochs, and the wall time each needs to reach it
  (test evaluations are excluded from both clocks).

The machines this runs on change speed by up to 2x over minutes, while the notebook's procedure
takes minutes and graphdyn's fits take a second or two. So graphdyn is measured ``--samples``
times (default 5), spread evenly over the notebook's run (after every 100/5 = 20 notebook epochs,
off the notebook's clock), and the medians are compared with the notebook's whole run; every
sample is reported. The time-to-accuracy fits run their whole schedule with the test MSE recorded
after every epoch, and the time to the notebook's final MSE is read off afterwards (training is
seeded, so each sample follows the same path and only its speed differs).

Usage (see docs/benchmarks.md for results)::

    python benchmarks/spring_training.py --target acceleration
    python benchmarks/spring_training.py --target dv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from graphdyn.data.registry import Window, build_dataset
from graphdyn.data.windows import WindowLoader
from graphdyn.evaluation.metrics import test_metrics
from graphdyn.models import DataInfo, build_model
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.module import DynamicsModule
from graphdyn.training.run import _quiet_lightning, target_std

EDGES = torch.tensor([[0, 1], [1, 0], [1, 2], [2, 1]], dtype=torch.long).T  # the notebook's (source, target) rows


class NotebookGNN(nn.Module):
    """The notebook's SpringGNN / SpringGNN_Acc (they are the same network), as written there."""

    def __init__(self, hidden_dim: int = 32):
        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(4, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim))
        self.node_mlp = nn.Sequential(nn.Linear(2 + hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def forward(self, positions, velocities, edges):
        n_nodes = positions.shape[0]
        node_features = torch.stack([positions, velocities], dim=1)
        source_nodes, target_nodes = edges[0], edges[1]
        edge_features = torch.cat([node_features[source_nodes], node_features[target_nodes]], dim=1)
        edge_messages = self.edge_mlp(edge_features)
        aggregated = torch.zeros(n_nodes, edge_messages.shape[1])
        for i in range(edges.shape[1]):  # the notebook's Python loop over edges
            aggregated[target_nodes[i]] += edge_messages[i]
        combined = torch.cat([node_features, aggregated], dim=1)
        return self.node_mlp(combined).squeeze()


def notebook_samples(ds, target: str) -> list[dict]:
    """graphdyn windows -> the notebook's list of per-sample dicts, with its keys: the dv notebook
    stores ``next_velocities`` (its loop takes the difference), the acceleration one
    ``accelerations``."""
    b = ds.batch()
    x, v, v_next = b.x[:, 0, :, 0], b.v[:, 0, :, 0], b.target_v[:, :, 0]
    samples = []
    for k in range(len(x)):
        s = {"positions": x[k].clone(), "velocities": v[k].clone(), "edges": EDGES}
        if target == "acceleration":
            s["accelerations"] = ((v_next[k] - v[k]) / b.dt).clone()
        else:
            s["next_velocities"] = v_next[k].clone()
        samples.append(s)
    return samples


def notebook_target(sample: dict) -> torch.Tensor:
    """What the notebook's loops compare the prediction with, computed as they do, per sample."""
    if "accelerations" in sample:
        return sample["accelerations"]
    return sample["next_velocities"] - sample["velocities"]


def notebook_test_mse(model, test) -> float:
    with torch.no_grad():
        return float(np.mean([F.mse_loss(model(s["positions"], s["velocities"], s["edges"]), notebook_target(s)).item() for s in test]))


def run_notebook(train, test, epochs: int, seed: int, between=None, every: int = 0) -> dict:
    """The notebook's procedure; ``between()`` runs after every ``every`` epochs, off the clock."""
    torch.manual_seed(seed)
    model = NotebookGNN(32)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    clock, curve = 0.0, []
    for epoch in range(epochs):
        if between is not None and every and epoch and epoch % every == 0:
            between()
        t0 = time.perf_counter()
        total_loss = 0.0
        for sample in train:  # the notebook's loop, line for line (its target difference and loss.item() included)
            opt.zero_grad()
            predicted = model(sample["positions"], sample["velocities"], sample["edges"])
            loss = F.mse_loss(predicted, notebook_target(sample))
            loss.backward()
            opt.step()
            total_loss += loss.item()
        if (epoch + 1) % 10 == 0:
            print(f"  notebook epoch {epoch + 1}: loss {total_loss / len(train):.6f}", flush=True)  # as the notebook prints
        clock += time.perf_counter() - t0
        curve.append((clock, notebook_test_mse(model, test)))
        print(f"  notebook epoch {epoch + 1}/{epochs}: {clock:.1f} s, test MSE {curve[-1][1]:.3g}", flush=True)
    if between is not None and every:
        between()
    return {"seconds": clock, "samples_per_second": epochs * len(train) / clock, "final_test_mse": curve[-1][1], "curve": curve}


class _TestCurve(pl.Callback):
    """The fit's clock, and with ``record`` the test MSE after every epoch (evaluated off the clock).

    The clock is the wall time of the whole fit, from the start of training to its end, minus
    the time spent in these test evaluations: Lightning's per-epoch bookkeeping is on it.
    """

    def __init__(self, test, record: bool):
        self.test, self.record = test, record
        self.clock = 0.0
        self.curve: list[tuple[float, float]] = []  # (clock, test MSE) after every epoch
        self._off = 0.0  # seconds spent evaluating

    def _now(self) -> float:
        return time.perf_counter() - self._t0 - self._off

    def on_train_start(self, trainer, module):
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        if not self.record:
            return
        clock = self._now()
        t_eval = time.perf_counter()
        mse = test_metrics(module.simulator, self.test)["target_mse"]
        module.simulator.train()
        self._off += time.perf_counter() - t_eval
        self.curve.append((clock, mse))

    def on_train_end(self, trainer, module):
        self.clock = self._now()


def make_simulator(splits, target: str, normalize: bool = False) -> LearnedSimulator:
    """graphdyn's version of the notebook's model (``gnn``, hidden 32) for ``target`` (dv or
    acceleration); ``normalize``: graphdyn's ``model.normalize_target``, the target over its
    training standard deviation (metrics stay physical)."""
    t = splits.train.traj
    info = DataInfo(dim=t.dim, channels=None, node_attr_dim=1, edge_attr_dim=0, T=1, n_nodes=t.n_nodes, has_velocities=True)
    model = build_model("gnn", {"target": "velocity_change" if target == "dv" else "acceleration", "hidden": 32}, info)
    return LearnedSimulator(model, target_scale=target_std(model, splits.train) if normalize else None)


def run_graphdyn(splits, target: str, batch_size: int, lr: float, epochs: int, seed: int, schedule: str, *,
                 record_test: bool = False, normalize: bool = False) -> dict:
    """One seeded graphdyn fit of ``epochs`` epochs; ``record_test``: the test MSE after every epoch."""
    _quiet_lightning()
    pl.seed_everything(seed, verbose=False)
    module = DynamicsModule(make_simulator(splits, target, normalize), lr=lr, lr_schedule=schedule)
    clock = _TestCurve(splits.test, record_test)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock])
    trainer.fit(module, train_dataloaders=WindowLoader(splits.train, batch_size, shuffle=True, seed=seed))
    samples = trainer.global_step * batch_size
    return {"batch_size": batch_size, "lr": lr, "schedule": schedule, "epochs_run": trainer.current_epoch, "steps": trainer.global_step,
            "seconds": clock.clock, "samples_per_second": samples / clock.clock, "curve": clock.curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["acceleration", "dv"], default="acceleration")
    ap.add_argument("--notebook-epochs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of graphdyn's trainer (default: torch's default, as for the notebook)")
    ap.add_argument("--notebook-threads", type=int, default=None,
                    help="torch threads of the notebook procedure (default: torch's default, as the notebook runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=500, help="graphdyn batch size for the time-to-accuracy run")
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--schedule", default="cosine", help="cosine anneals over --max-epochs")
    ap.add_argument("--raw-target", action="store_true",
                    help="time to accuracy on the raw target (default: graphdyn's normalize_target, as the notebook's dv needs)")
    ap.add_argument("--max-epochs", type=int, default=600)
    ap.add_argument("--samples", type=int, default=5, help="graphdyn measurements spread over the notebook's run (medians reported)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.samples < 1:
        ap.error("--samples must be at least 1")
    default_threads = torch.get_num_threads()
    nb_threads = args.notebook_threads or default_threads
    args.threads = args.threads or default_threads

    n_train = 2000 if args.target == "acceleration" else 1000  # the notebook's sizes
    splits = build_dataset("springs", {"n_train": n_train, "n_val": 200, "n_test": 200}, Window(), args.seed)
    train, test = notebook_samples(splits.train, args.target), notebook_samples(splits.test, args.target)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"notebook on {nb_threads} thread(s), graphdyn on {args.threads}")
    print(f"data: {n_train} train / 200 test snapshots of the 3-mass chain, target {args.target}")

    torch.set_num_threads(args.threads)
    run_graphdyn(splits, args.target, n_train, args.lr, 20, args.seed, "none")  # first calls, thread pool, kernels
    samples: list[tuple[dict, dict]] = []

    def graphdyn_sample() -> None:
        """One throughput fit and one time-to-accuracy fit of graphdyn, on graphdyn's threads."""
        torch.set_num_threads(args.threads)
        thr = run_graphdyn(splits, args.target, n_train, args.lr, 200, args.seed, "none")
        tta = run_graphdyn(splits, args.target, args.batch_size, args.lr, args.max_epochs, args.seed, args.schedule,
                           record_test=True, normalize=not args.raw_target)
        samples.append((thr, tta))
        print(f"  graphdyn sample {len(samples)}: {thr['samples_per_second']:.0f} samples/s full batch; "
              f"time-to-accuracy fit {tta['seconds']:.2f} s for {tta['steps']} steps", flush=True)
        torch.set_num_threads(nb_threads)

    every = max(1, args.notebook_epochs // args.samples)
    print(f"notebook procedure, {args.notebook_epochs} epochs, batch 1, Python edge loop; graphdyn measured after "
          f"every {every} of its epochs (full batch of {n_train}, 200 epochs; then batch {args.batch_size}, lr {args.lr}, "
          f"{args.schedule} over {args.max_epochs} epochs) ...", flush=True)
    torch.set_num_threads(nb_threads)
    nb = run_notebook(train, test, args.notebook_epochs, args.seed, graphdyn_sample, every)
    torch.set_num_threads(args.threads)

    def first_reach(curve, level):
        return next((k for k, (t, m) in enumerate(curve) if m <= level), None)

    target_mse = nb["final_test_mse"]
    thr_runs = [thr for thr, _ in samples]
    tta_runs = []
    for _, tta in samples:
        k = first_reach(tta["curve"], target_mse)
        steps_per_epoch = tta["steps"] // max(1, tta["epochs_run"])
        tta_runs.append({
            "reached_at_seconds": None if k is None else tta["curve"][k][0],
            "epochs": None if k is None else k + 1,
            "steps": None if k is None else (k + 1) * steps_per_epoch,
            "test_mse_then": None if k is None else tta["curve"][k][1],
            "whole_fit_seconds": tta["seconds"],
        })
    sps = statistics.median(r["samples_per_second"] for r in thr_runs)
    reached = [r["reached_at_seconds"] for r in tta_runs]
    reach = None if any(t is None for t in reached) else statistics.median(reached)
    nb_first_epoch = first_reach(nb["curve"], target_mse)
    nb_first = nb["curve"][nb_first_epoch][0]
    result = {
        "target": args.target,
        "threads": {"notebook": nb_threads, "graphdyn": args.threads},
        "notebook": {k: v for k, v in nb.items() if k != "curve"},
        "notebook_first_reached_its_final_mse_at": nb_first,
        "graphdyn_throughput": {"batch_size": n_train, "epochs": 200, "samples_per_second_median": sps,
                                "samples_per_second_each": [r["samples_per_second"] for r in thr_runs]},
        "graphdyn_time_to_accuracy": {"batch_size": args.batch_size, "lr": args.lr, "schedule": args.schedule,
                                      "max_epochs": args.max_epochs, "normalize_target": not args.raw_target,
                                      "reached_at_seconds_median": reach, "each": tta_runs},
        "throughput_ratio": sps / nb["samples_per_second"],
        # strict: the first time the notebook's test MSE was at its final level (its per-sample
        # SGD is noisy, so that can be well before its last epoch) over graphdyn's time to it
        "time_to_accuracy_ratio": None if reach is None else nb_first / reach,
        # the notebook's whole run over graphdyn's time to the same test MSE
        "time_to_accuracy_ratio_full_run": None if reach is None else nb["seconds"] / reach,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        from graphdyn.io import write_json

        write_json(args.json, result)


if __name__ == "__main__":
    main()
