"""Every registered model trains through ``graphdyn train``'s code path on every paper dataset
kind it takes: MD17 (single-channel molecules), CMU motion capture (single-channel skeletons)
and AdK (four backbone channels per residue), on the small real files the test suite carries.

One epoch each, tiny splits: what is checked is that the run completes end to end (data ->
model -> Lightning fit -> test metrics and rollout -> files) with finite numbers, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from graphdyn.models.registry import available_models, model_class
from graphdyn.training.config import load_config
from graphdyn.training.run import train
from tests.data.test_mocap import TRIALS, _write_trials

FILES = Path(__file__).resolve().parents[1] / "data" / "files"

#: dataset kind -> (layout, data section); T = 10 frames as in the paper, strides that fit the files
DATASETS = {
    "md17": ("single", {"source": "md17", "T": 10, "delta": 5,
                        "options": {"path": str(FILES / "ethanol_md17.npz"), "skip": 50, "fractions": [0.5, 0.25, 0.25], "train_size": 20, "val_size": 10,
                                    "test_size": 10}}),
    "mocap": ("single", {"source": "mocap", "T": 10, "delta": 2,
                         "options": {"subject": 35, "trials": [t[0] for t in TRIALS], "start_pool": 8, "starts_per_trial": 4,
                                     "split": {"train": [2, 0], "val": [4], "test": [1, 3]}}}),
    "adk": ("multi", {"source": "adk", "T": 10, "delta": 2, "options": {}}),
}


def _cases():
    out = []
    for name in available_models(variants=False):
        cls = model_class(name)
        if cls.needs_velocities:  # the notebook's gnn: the paper's datasets have no velocities
            continue
        for data, (layout, _) in DATASETS.items():
            if layout in cls.layouts:
                out.append(pytest.param(name, data, id=f"{name}-{data}"))
    return out


@pytest.fixture(scope="module")
def mocap_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mocap")
    _write_trials(folder)
    return folder


@pytest.mark.parametrize("name,data", _cases())
def test_model_trains_on_dataset(name, data, tmp_path, mocap_dir):
    pytest.importorskip("MDAnalysisTests") if data == "adk" else None
    section = json.loads(json.dumps(DATASETS[data][1]))
    if data == "mocap":
        section["options"]["data_dir"] = str(mocap_dir)
    cfg = load_config(None, [
        f"data={json.dumps(section)}", f"model.name={name}", "training.epochs=1", "training.batch_size=16",
        "training.progress=false", "eval.rollout_steps=2", "eval.rollout_starts=2", f"output_dir={tmp_path}",
    ])
    result = train(cfg, quiet=True)
    assert result.metrics["status"] == "completed"
    test = result.metrics["test"]
    assert np.isfinite(test["pos_mse"]) and test["pos_mse"] > 0
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["status"] == "completed" and (result.run_dir / "model.pt").exists()
