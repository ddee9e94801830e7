"""training.logger: CSV always, TensorBoard for real (tensorboardX is a test dependency), and a
one-line message naming the extra when a logger's package is missing."""

from __future__ import annotations

import sys

import pytest

from graphdyn import GraphdynError
from graphdyn.training import run as run_mod
from graphdyn.training.config import load_config

TINY = ["data.options.n_train=60", "data.options.n_val=20", "data.options.n_test=20", "training.batch_size=30",
        "training.epochs=2", "training.threads=1", "model.params.hidden=8", "eval.rollout_steps=2", "eval.rollout_starts=2"]


@pytest.mark.parametrize("value, expected", [("tensorboard", ["csv", "tensorboard"]), ("[wandb, csv, wandb]", ["csv", "wandb"]),
                                             ("[]", ["csv"]), ("csv", ["csv"])])
def test_logger_setting_always_keeps_csv_first(value, expected):
    assert load_config(None, [f"training.logger={value}"]).training.logger == expected
    assert load_config(None).training.logger == ["csv"]


def test_unknown_logger_names_the_key():
    with pytest.raises(GraphdynError, match="training.logger"):
        load_config(None, ["training.logger=[csv, tensorbord]"])


def test_tensorboard_logger_writes_an_events_file(tmp_path, monkeypatch):
    for name in ("loss_curves", "rollout_figure", "error_vs_step"):
        monkeypatch.setattr(run_mod.plots, name, lambda *a, **k: None)
    result = run_mod.train(load_config(None, [*TINY, "training.logger=tensorboard"]), quiet=True, run_dir=tmp_path / "run")
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 100
    assert b"train_loss" in events[0].read_bytes() and b"val_loss" in events[0].read_bytes()
    assert (result.run_dir / "metrics.csv").exists()


@pytest.mark.parametrize("logger, hidden", [("mlflow", ["mlflow"]), ("wandb", ["wandb"]), ("tensorboard", ["tensorboard", "tensorboardX"])])
def test_missing_logger_package_is_one_line_naming_the_extra(tmp_path, monkeypatch, logger, hidden):
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(GraphdynError) as exc:
        run_mod.train(load_config(None, [*TINY, f"training.logger=[csv, {logger}]"]), quiet=True, run_dir=tmp_path / "run")
    message = str(exc.value)
    assert f"pip install graphdyn[{logger}]" in message and "training.logger" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was made
