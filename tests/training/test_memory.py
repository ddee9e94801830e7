"""graphdyn.training.memory: glibc's malloc keeps freed memory; the environment switch turns it off."""

import platform
import subprocess
import sys

import pytest

CODE = "from graphdyn.training.memory import keep_freed_memory; print(keep_freed_memory())"


def run(env_value: str | None) -> str:
    import os

    env = dict(os.environ)
    env.pop("GRAPHDYN_KEEP_MEMORY", None)
    if env_value is not None:
        env["GRAPHDYN_KEEP_MEMORY"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_sets_glibc_malloc_options():
    assert run(None) == "True"


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_environment_switch_leaves_malloc_alone(value):
    assert run(value) == "False"


@pytest.fixture
def mallopt_calls(monkeypatch):
    """Every (param, value) that graphdyn.training.memory would pass to mallopt; malloc itself untouched."""
    from graphdyn.training import memory

    calls = []

    def fake(param, value):
        calls.append((param, value))
        return 1

    monkeypatch.setattr(memory, "_mallopt", lambda: fake)
    monkeypatch.delenv(memory.ENV, raising=False)
    return calls


def test_fake_mallopt_sees_both_settings(mallopt_calls):
    from graphdyn.training import memory

    assert memory.keep_freed_memory() is True
    assert mallopt_calls == [(memory.M_MMAP_MAX, 0), (memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD)]


def test_library_train_leaves_malloc_alone(mallopt_calls, tmp_path, monkeypatch):
    """graphdyn.training.run.train (and the prepare it calls) is a library call: no process-wide malloc setting."""
    from graphdyn.training import run as run_mod
    from graphdyn.training.config import load_config

    for name in ("loss_curves", "rollout_figure", "error_vs_step"):
        monkeypatch.setattr(run_mod.plots, name, lambda *a, **k: None)
    config = load_config(None, ["data.options.n_train=50", "data.options.n_val=10", "data.options.n_test=10",
                                "training.epochs=1", "training.batch_size=50", "training.progress=false",
                                "eval.rollout_steps=3", "eval.rollout_starts=2", f"output_dir={tmp_path}"])
    run_mod.prepare(config)
    result = run_mod.train(config, quiet=True)
    assert result.status == "completed"
    assert mallopt_calls == []
