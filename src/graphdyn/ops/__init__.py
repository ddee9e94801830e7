"""graphdyn's hot ops: one file per op, each a reference in plain autograd and a native kernel.

An op module (``graphdyn/ops/<op>.py``) holds, in this order:

* the math and tensor shapes in its docstring;
* ``reference(...)``: the math in plain PyTorch autograd, the truth every test compares with;
* ``native_refusal(...)``: why the C kernel cannot take a call (None: it can);
* the kernel registered as PyTorch custom ops (``torch.library.custom_op("graphdyn::<op>")``
  with a fake implementation for tracing, and a ``..._backward`` op wired in by
  ``register_autograd``): the only place ``ctypes`` calls into the library of
  :mod:`graphdyn.native`;
* the op itself, ``<op>(..., backend)``, which asks :func:`graphdyn.ops.backend.use_native`
  and runs one or the other;
* ``cases()``: small float64 argument sets on which ``tests/ops/test_parity.py`` runs every
  backend against the reference (values, gradients, gradcheck, ``torch.library.opcheck``).

Changing an op's math means changing its ``reference`` and its kernel (C source in
``graphdyn/native/``), and nothing else. Which implementation runs is one setting per model
(:mod:`graphdyn.ops.backend`).
"""

from __future__ import annotations

from graphdyn.ops import edft_edges as _edft_edges_module
from graphdyn.ops import egnn_edges as _egnn_edges_module
from graphdyn.ops import interaction as _interaction_module
from graphdyn.ops import node_update as _node_update_module
from graphdyn.ops import temporal_attention as _temporal_attention_module
from graphdyn.ops.backend import BACKENDS, configure, describe_usage, reset_usage, resolve, usage
from graphdyn.ops.edft_edges import edft_edges
from graphdyn.ops.egnn_edges import egnn_edges
from graphdyn.ops.interaction import interaction
from graphdyn.ops.node_update import node_update
from graphdyn.ops.temporal_attention import temporal_attention

#: every op module, by op name (the parity test runs all of them)
OPS = {m.NAME: m for m in (_edft_edges_module, _egnn_edges_module, _interaction_module, _node_update_module, _temporal_attention_module)}

__all__ = ["BACKENDS", "OPS", "configure", "describe_usage", "edft_edges", "egnn_edges", "interaction", "node_update", "reset_usage", "resolve", "temporal_attention", "usage"]
