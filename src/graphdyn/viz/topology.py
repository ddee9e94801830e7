"""What a trajectory's nodes are, for trajectory files and animations: atoms, names, bonds.

A :class:`Topology` turns a node layout ``[N, (C,) D]`` into ``A = N * C`` atoms with names,
elements, residues and the bonded pairs to draw or write as ``CONECT`` records. It is read
from the :class:`~graphdyn.data.trajectory.Trajectory` the rollout came from, by
:func:`topology_of`:

==========  ==========================================================================
kind        source and what it gives
==========  ==========================================================================
molecule    ``md17``: atoms named by element and count (``C1``, ``C2``, ``O1``), elements
            from the atomic numbers (``metadata["atomic_numbers"]``, else ``node_attr``
            column ``Z``), one residue ``MOL``; bonds are the graph's 1-hop edges
protein     ``adk``: 4 atoms per residue named after the channels (``N, CA, C, O``),
            element = first letter of the name, residue names and ids parsed from
            ``metadata["residues"]`` (``"GLY214"`` -> ``GLY``, 214); bonds N-CA, CA-C, C-O
            and the peptide bond C(i)-N(i+1) between consecutive residue ids
skeleton    ``mocap``: atoms named after the joints (``metadata["joint_names"]``),
            element ``X``, one residue ``SKL``; bonds are the bones (edge attribute 1)
particles   anything else (springs, charged, gravity, user files): one residue ``PAR``
            per node, atoms named ``X`` (``X1 .. XC`` with channels), element ``X``;
            bonds are the springs of a spring system, none otherwise
==========  ==========================================================================

``X`` is the dummy element that ASE and VMD accept. Files and drawings are 3-D: 1-D and 2-D
coordinates are padded with zeros (:meth:`Topology.atom_positions`).

Shapes: positions ``[F, N, D]`` or ``[F, N, C, D]`` -> atoms ``[F, N * C, 3]`` (channel
fastest: node 0's C atoms, then node 1's, ...); ``bonds [B, 2]`` atom indices, ``i < j``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError

#: Backbone channel names for which the intra-residue bonds are known.
BACKBONE = ("N", "CA", "C", "O")
_BACKBONE_BONDS = ((0, 1), (1, 2), (2, 3))  # N-CA, CA-C, C=O
_RESIDUE_LABEL = re.compile(r"(.+?)(-?\d+)")


@dataclass(frozen=True)
class Topology:
    """Atoms of a node layout; see the module docstring.

    ``names``, ``elements`` and ``atom_resindex`` have one entry per atom; ``resnames`` and
    ``resids`` one per residue. ``channels`` is the data's channel count (None for
    single-channel ``[N, D]`` nodes, one atom each), ``dim`` its spatial dimension (1-3),
    ``length_unit`` as the data gives it (None if unknown).
    """

    kind: str
    names: tuple[str, ...]
    elements: tuple[str, ...]
    resnames: tuple[str, ...]
    resids: tuple[int, ...]
    atom_resindex: np.ndarray
    bonds: np.ndarray
    n_nodes: int
    channels: int | None
    dim: int
    length_unit: str | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.names)

    @property
    def padded(self) -> bool:
        """True when coordinates are padded with zeros to 3-D."""
        return self.dim < 3

    @property
    def node_shape(self) -> tuple[int, ...]:
        """The per-node shape this topology describes: ``(D,)`` or ``(C, D)``."""
        return (self.dim,) if self.channels is None else (self.channels, self.dim)

    def atom_positions(self, positions: np.ndarray) -> np.ndarray:
        """``[F, N, (C,) D]`` -> ``[F, N * C, 3]`` float64, zero-padded to 3-D.

        Raises :class:`GraphdynError` (field ``positions``) when the shape does not fit.
        """
        x = np.asarray(positions, dtype=np.float64)
        expected = (self.n_nodes, *self.node_shape)
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise GraphdynError(f"expected frames of shape {expected} ({self.kind}), got {tuple(x.shape[1:])}", field="positions")
        x = x.reshape(x.shape[0], self.n_atoms, self.dim)
        if self.dim < 3:
            x = np.concatenate([x, np.zeros((*x.shape[:2], 3 - self.dim))], axis=-1)
        return x


def topology_of(traj: Trajectory) -> Topology:
    """The :class:`Topology` of ``traj``'s nodes (see the module docstring)."""
    meta = traj.metadata
    dataset = meta.get("dataset")
    if dataset == "md17" and traj.n_channels is None and traj.dim == 3:
        return _molecule(traj)
    if dataset == "adk" and traj.n_channels is not None and len(meta.get("residues", ())) == traj.n_nodes:
        return _protein(traj)
    if dataset == "mocap" and traj.n_channels is None and len(meta.get("joint_names", ())) == traj.n_nodes:
        return _skeleton(traj)
    return _particles(traj)


def _undirected(edge_index: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Unique ``(i, j)`` pairs with ``i < j`` of an edge list ``[2, E]`` (optionally masked)."""
    ei = np.asarray(edge_index, dtype=np.int64)
    if keep is not None:
        ei = ei[:, keep]
    pairs = np.sort(ei.T, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0).reshape(-1, 2)


def _edge_column(traj: Trajectory, name: str, default: int | None) -> np.ndarray | None:
    """Column ``name`` of ``edge_attr`` (by ``metadata["edge_attr_columns"]``), or None."""
    if traj.edge_attr is None:
        return None
    columns = list(traj.metadata.get("edge_attr_columns", ()))
    col = columns.index(name) if name in columns else default
    if col is None or col >= traj.edge_attr.shape[1]:
        return None
    return traj.edge_attr[:, col]


def _molecule(traj: Trajectory) -> Topology:
    from MDAnalysis.guesser.tables import Z2SYMB

    z = traj.metadata.get("atomic_numbers")
    if z is None or len(z) != traj.n_nodes:
        z = traj.node_attr[:, 0]
    z = np.asarray(z).round().astype(np.int64)
    unknown = sorted({int(v) for v in z if int(v) not in Z2SYMB})
    if unknown:
        raise GraphdynError(f"atomic numbers {unknown} name no element", field="node_attr")
    elements = tuple(Z2SYMB[int(v)] for v in z)
    counts: dict[str, int] = {}
    names = []
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
        names.append(f"{el.upper()}{counts[el]}")
    hop = _edge_column(traj, "hop", 2)
    bonds = _undirected(traj.edge_index, None if hop is None else hop == 1)
    return Topology("molecule", tuple(names), elements, ("MOL",), (1,), np.zeros(traj.n_nodes, np.int64), bonds,
                    traj.n_nodes, None, traj.dim, traj.units.get("length"))


def parse_residue(label: str) -> tuple[str, int]:
    """``"GLY214"`` -> ``("GLY", 214)``: the trailing integer is the id (``adk`` labels are
    resname + resid); a label without one raises :class:`GraphdynError`."""
    match = _RESIDUE_LABEL.fullmatch(str(label))
    if match is None:
        raise GraphdynError(f"residue label {label!r} does not end in a residue id", field="metadata.residues")
    return match.group(1), int(match.group(2))


def _protein(traj: Trajectory) -> Topology:
    C = traj.n_channels
    channels = tuple(str(c) for c in traj.metadata.get("channels", ()))
    if len(channels) != C:
        channels = tuple(f"X{c + 1}" for c in range(C))
    resnames, resids = zip(*(parse_residue(r) for r in traj.metadata["residues"]))
    n = traj.n_nodes
    names = channels * n
    elements = tuple((c[0] if c in BACKBONE else "X") for c in names)
    bonds = []
    if channels == BACKBONE:
        base = np.arange(n)[:, None] * C
        bonds += [base + np.array(pair) for pair in _BACKBONE_BONDS]
        ids = np.asarray(resids)
        nxt = np.flatnonzero(ids[1:] == ids[:-1] + 1)  # residue r and r + 1 are consecutive in the chain
        bonds.append(np.stack([nxt * C + 2, (nxt + 1) * C], axis=1))
    pairs = np.concatenate(bonds).reshape(-1, 2) if bonds else np.zeros((0, 2), np.int64)
    return Topology("protein", names, elements, tuple(resnames), tuple(int(r) for r in resids), np.repeat(np.arange(n), C),
                    np.unique(np.sort(pairs, axis=1), axis=0).astype(np.int64).reshape(-1, 2), n, C, traj.dim,
                    traj.units.get("length"))


def _skeleton(traj: Trajectory) -> Topology:
    kind = _edge_column(traj, "kind", 0)
    bonds = _undirected(traj.edge_index, None if kind is None else kind == 1)
    n = traj.n_nodes
    return Topology("skeleton", tuple(str(j) for j in traj.metadata["joint_names"]), ("X",) * n, ("SKL",), (1,),
                    np.zeros(n, np.int64), bonds, n, None, traj.dim, traj.units.get("length"))


def _particles(traj: Trajectory) -> Topology:
    n = traj.n_nodes
    C = traj.n_channels or 1
    system = traj.metadata.get("system")
    springs = isinstance(system, dict) and system.get("kind") == "springs"
    if traj.n_channels is None:
        names, resname = ("X",) * n, "PAR"
        bonds = _undirected(traj.edge_index) if springs else np.zeros((0, 2), np.int64)
    else:
        names, resname = tuple(f"X{c + 1}" for c in range(C)) * n, "NOD"
        bonds = np.zeros((0, 2), np.int64)
    return Topology("particles", names, ("X",) * (n * C), (resname,) * n, tuple(range(1, n + 1)), np.repeat(np.arange(n), C),
                    bonds, n, traj.n_channels, traj.dim, traj.units.get("length"))
