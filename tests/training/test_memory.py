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
