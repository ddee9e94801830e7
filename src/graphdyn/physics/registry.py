"""Systems and dynamics from their metadata: the constants that travel with the data.

``system.to_metadata()`` gives a JSON dictionary with ``kind`` and every constant;
:func:`from_metadata` turns it back into the system. A trajectory's metadata (written by
:func:`graphdyn.physics.generate.generate`) also holds ``dt``, ``integrator`` and
``record_every``, from which :func:`dynamics_from_metadata` rebuilds the true physics.
"""

from __future__ import annotations

from typing import Any

import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics.integrators import Dynamics
from graphdyn.physics.nbody import ChargedSystem, GravitySystem
from graphdyn.physics.springs import SpringSystem
from graphdyn.physics.system import System

SYSTEMS: dict[str, type[System]] = {cls.kind: cls for cls in (SpringSystem, ChargedSystem, GravitySystem)}


def from_metadata(meta: dict[str, Any]) -> System:
    """The system described by ``meta`` (a ``to_metadata()`` dictionary)."""
    if not isinstance(meta, dict):
        raise GraphdynError(f"expected a dictionary, got {type(meta).__name__}", field="system")
    kind = meta.get("kind")
    if kind not in SYSTEMS:
        raise GraphdynError(f"unknown system kind {kind!r}; known: {', '.join(sorted(SYSTEMS))}", field="system.kind")
    try:
        return SYSTEMS[kind].from_metadata(meta)
    except KeyError as exc:
        raise GraphdynError(f"missing constant {exc.args[0]!r} for a {kind} system", field="system") from None
    except (TypeError, ValueError) as exc:
        raise GraphdynError(f"invalid {kind} constants ({exc})", field="system") from None


def dynamics_from_metadata(meta: dict[str, Any], *, dtype: torch.dtype | None = torch.float64) -> Dynamics:
    """The true :class:`Dynamics` from ``{"system", "dt", "integrator"[, "substeps" | "record_every"]}``.

    For a trajectory's metadata one step of the result spans one recorded frame: the
    integrator ``dt`` times ``record_every`` (or ``substeps``) integrator steps. Noise is not
    part of the rebuilt dynamics: it is the clean physics the data was drawn around.
    """
    for key in ("system", "dt", "integrator"):
        if key not in meta:
            raise GraphdynError("missing key in dynamics metadata", field=f"metadata.{key}")
    substeps = meta.get("substeps", meta.get("record_every", 1))
    return Dynamics(
        from_metadata(meta["system"]),
        float(meta["dt"]),
        str(meta["integrator"]),
        substeps=int(substeps),
        dtype=dtype,
    )
