"""Multi-process training (Lightning DDP on CPU with gloo): one run folder, disjoint shards."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spring_chain import notebook_snapshots
from graphdyn import WindowDataset
from graphdyn.data.windows import WindowLoader


def test_loader_shards_are_disjoint_equal_and_cover_everything(monkeypatch):
    ds = WindowDataset(notebook_snapshots(103))
    seen, lengths = [], []
    for rank in range(2):
        monkeypatch.setattr(WindowLoader, "_rank_world", lambda self, r=rank: (r, 2))
        loader = WindowLoader(ds, batch_size=10, shuffle=True, seed=4)
        xs = torch.cat([b.x[:, 0, :, 0] for b in loader])
        lengths.append((len(loader), len(xs)))
        seen.append({tuple(r) for r in xs.tolist()})
    assert lengths[0] == lengths[1] == (6, 52)  # ceil(103 / 2) = 52 each, the last sample repeated
    assert len(seen[0] | seen[1]) == 103 and len(seen[0] & seen[1]) <= 1


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_ddp_on_two_cpu_processes_writes_one_run(tmp_path):
    script = Path(sys.executable).with_name("graphdyn")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("GRAPHDYN_RUN_DIR", None)
    proc = subprocess.run(
        [str(script), "train", "notebook_acc", "--epochs", "2", "--quiet", "--output-dir", str(tmp_path),
         "--set", "training.strategy=ddp", "--set", "training.devices=2", "--set", "training.accelerator=cpu",
         "--set", "data.options.n_train=200", "--set", "eval.rollout_steps=5"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    # 200 samples, batch 50, two processes: each takes 100 samples per epoch in 2 steps
    assert results["fit"]["optimizer_steps"] == 4 and results["fit"]["epochs"] == 2
    assert proc.stdout.count("run folder:") == 1
    assert np.isfinite(results["test"]["target_mse"])
