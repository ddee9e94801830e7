"""graphdyn.nn exports the layers models are built from, lazily, and no backend module."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphdyn.nn

NN_DIR = Path(graphdyn.nn.__file__).parent


def _is_backend(module_name: str) -> bool:
    return module_name.endswith(("_native", "_fused"))


def test_the_main_layers_import_from_the_package():
    from graphdyn.nn import EDFT, EGNNLayer, InteractionLayer, TemporalAttention, TemporalPooling

    from graphdyn.nn.edft import EDFT as edft_def
    from graphdyn.nn.egnn import EGNNLayer as egnn_def

    assert EDFT is edft_def and EGNNLayer is egnn_def
    for cls in (EDFT, EGNNLayer, InteractionLayer, TemporalAttention, TemporalPooling):
        assert issubclass(cls, torch.nn.Module)


def test_all_lists_only_existing_non_backend_names():
    assert len(set(graphdyn.nn.__all__)) == len(graphdyn.nn.__all__)
    for name in graphdyn.nn.__all__:
        value = getattr(graphdyn.nn, name)
        assert not inspect.ismodule(value), name
        assert value.__module__.startswith("graphdyn.nn."), (name, value.__module__)
        assert not _is_backend(value.__module__), (name, value.__module__)
        assert name in dir(graphdyn.nn)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchLayer"):
        graphdyn.nn.NoSuchLayer  # noqa: B018
    with pytest.raises(ImportError):
        from graphdyn.nn import NoSuchLayer  # noqa: F401


def test_every_public_layer_class_is_exported():
    """Every public torch.nn.Module subclass defined in a (non-backend) module of graphdyn.nn."""
    missing = []
    for path in sorted(NN_DIR.glob("*.py")):
        if path.stem == "__init__" or _is_backend(path.stem):
            continue
        classes = [n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")]
        if not classes:
            continue
        module = __import__(f"graphdyn.nn.{path.stem}", fromlist=["_"])
        for name in classes:
            cls = getattr(module, name)
            if issubclass(cls, torch.nn.Module) and name not in graphdyn.nn.__all__:
                missing.append(f"{path.stem}.{name}")
    assert missing == []


def test_import_is_cheap_and_imports_no_layer_module():
    """``import graphdyn.nn`` imports MLP and the scatter helpers only: no e3nn, no layer module."""
    code = ("import sys, graphdyn.nn; print(sorted(m for m in sys.modules if m.startswith('graphdyn.nn.')));"
            "print('e3nn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['graphdyn.nn.mlp', 'graphdyn.nn.scatter']"
    assert out[1] == "False"
