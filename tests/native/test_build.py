"""Building and loading the native kernels, and running without them."""

import ctypes

import pytest
import torch

from graphdyn import native
from graphdyn.nn.message_passing import InteractionLayer


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A clean loader state that builds into a temporary data folder. Only the interaction
    kernel's unit is built: these tests are about building and loading, and a full build (every
    kernel, about half a minute) already happens once per session for the other tests."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.delenv(native.REQUIRE_ENV, raising=False)  # make test sets it; these tests choose
    monkeypatch.setattr(native, "UNITS", (("edge_sum.c", "interaction.c"),))
    monkeypatch.setenv("GRAPHDYN_NATIVE_CACHE", str(tmp_path / "native"))
    return tmp_path


def _layer_output():
    torch.manual_seed(0)
    layer = InteractionLayer(2, 1, hidden=32).double()  # the compiled width
    h = torch.randn(3, 4, 2, dtype=torch.float64)
    return layer(h, torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]))


def test_disabled_by_environment(fresh, monkeypatch, recwarn):
    monkeypatch.setenv(native.ENV, "0")
    assert native.load() is None and not native.available()
    assert not recwarn.list  # switched off on purpose: no warning
    assert not (fresh / "native").exists()


def test_missing_compiler_warns_once_and_layers_still_work(fresh, monkeypatch):
    monkeypatch.setenv("CC", "graphdyn-no-such-compiler")
    with pytest.warns(UserWarning, match="native kernels unavailable.*graphdyn-no-such-compiler"):
        assert native.load() is None
    out = _layer_output()  # the PyTorch path; no second warning
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv(native.ENV, "0")
    torch.testing.assert_close(out, _layer_output())


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
def test_builds_once_into_the_data_folder(fresh):
    assert native.load() is not None
    libs = list((fresh / "native").glob("graphdyn-*.so"))
    assert len(libs) == 1
    stamp = libs[0].stat().st_mtime_ns
    native._state.clear()
    assert native.load() is not None  # reused, not rebuilt
    assert libs[0].stat().st_mtime_ns == stamp
    assert [p.name for p in (fresh / "native").iterdir()] == [libs[0].name]  # no temporary left behind


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
def test_native_and_pytorch_paths_agree(fresh, monkeypatch):
    with_kernels = _layer_output()
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv(native.ENV, "0")
    torch.testing.assert_close(_layer_output(), with_kernels, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
def test_a_variant_that_fails_to_link_is_not_retried_once_another_is_built(fresh, monkeypatch):
    monkeypatch.setattr(native, "VARIANTS", ((("-DGRAPHDYN_MVEC",), ("-lgraphdyn-no-such-library",)),) + native.VARIANTS[1:])
    out = fresh / "native"
    first = native._build(out)  # the first variant fails to link; the plain one is built
    compiles = []
    real_run = native.subprocess.run

    def counting_run(cmd, *args, **kwargs):
        if "-o" in cmd:
            compiles.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(native.subprocess, "run", counting_run)
    assert native._build(out) == first and compiles == []


@pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))
def test_every_unit_compiles_alone_and_a_compile_error_is_reported(fresh, monkeypatch):
    monkeypatch.setattr(native, "UNITS", (("edft.c",), ("edge_sum.c", "interaction.c")))
    units = native._units()
    assert len(units) == 2 * len(native._TYPES) and all("#define real" in u for u in units)
    lib = native._build(fresh / "native")
    loaded = ctypes.CDLL(str(lib))
    for name in ("edft_edges_fwd", "interaction_fwd"):
        for sfx in ("f32", "f64"):
            assert getattr(loaded, f"{name}_{sfx}")
    monkeypatch.setattr(native, "_units", lambda: ["int broken(void) { return missing_name; }"])
    with pytest.raises(RuntimeError, match="missing_name"):
        native._build(fresh / "other")
    assert not list((fresh / "other").glob("*.so")) and not [p for p in (fresh / "other").iterdir() if p.is_dir()]


def test_required_kernels_that_fail_to_build_raise_naming_the_compiler_error(fresh, monkeypatch):
    """``GRAPHDYN_REQUIRE_NATIVE=1`` (make test): a C source with a missing ';' is an error, every
    time it is asked, not a warning and a silent fallback."""
    monkeypatch.setenv(native.REQUIRE_ENV, "1")
    broken = [u + "\nint graphdyn_broken(void) { return 0 }\n" for u in native._units()]  # the missing ";"
    monkeypatch.setattr(native, "_units", lambda: broken)
    for _ in range(2):
        with pytest.raises(RuntimeError, match=r"GRAPHDYN_REQUIRE_NATIVE.*(expected|error)"):
            native.load()
    status = native.status()
    assert not status["compiled"] and "error" in status["error"]
    with pytest.raises(RuntimeError, match="GRAPHDYN_REQUIRE_NATIVE"):
        native.available()


def test_asking_for_the_native_backend_without_kernels_is_a_one_line_error(fresh, monkeypatch):
    from graphdyn.errors import GraphdynError
    from graphdyn.models.base import DataInfo
    from graphdyn.models.registry import build_model

    monkeypatch.setenv("CC", "graphdyn-no-such-compiler")
    info = DataInfo(dim=3, channels=None, node_attr_dim=1, edge_attr_dim=0, T=10, n_nodes=3, has_velocities=False)
    with pytest.warns(UserWarning):
        with pytest.raises(GraphdynError, match="backend 'native' asked for.*graphdyn-no-such-compiler") as err:
            build_model("estag", {}, info, backend="native")
    assert err.value.field == "model.backend"
    model = build_model("estag", {}, info, backend="auto")  # auto falls back to the reference
    assert {m.backend for m in model.modules() if isinstance(getattr(m, "backend", None), str)} == {"torch"}


def test_make_test_fails_rather_than_skips_when_the_kernels_do_not_build(tmp_path):
    """The suite under GRAPHDYN_REQUIRE_NATIVE=1 with a compiler that fails: exit 1 before any test, saying why."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, native.REQUIRE_ENV: "1", "CC": "false", native.CACHE_ENV: str(tmp_path / "native")}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ops/test_parity.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "GRAPHDYN_REQUIRE_NATIVE" in proc.stdout + proc.stderr
    assert " passed" not in proc.stdout and " skipped" not in proc.stdout
