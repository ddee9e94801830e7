"""Acclaim ASF/AMC motion capture: parser and forward kinematics.

An ``.asf`` file describes a skeleton (bone directions and lengths in a rest pose, the
local rotation axes of each bone, its degrees of freedom and the parent-child hierarchy);
an ``.amc`` file holds, per frame, the root translation and rotation and each bone's
rotation angles. This module reads both and turns a motion into 3-D joint positions.

Conventions (the Acclaim format definition, written for column vectors):

* Angles are in degrees unless the ASF ``:units`` say ``angle rad`` (an AMC ``:RADIANS``
  or ``:DEGREES`` line overrides that for the motion file).
* An Euler rotation with order ``"XYZ"`` rotates first about x, then y, then z, all about
  fixed axes: ``R = Rz(c) · Ry(b) · Rx(a)``. The same holds for a bone's ``dof`` list: the
  rotations apply in the order the dofs are listed (``rx ry rz`` gives ``Rz·Ry·Rx``).
* A bone with axis angles giving ``C`` and motion rotation ``M`` (from its dof values)
  has the global rotation ``G = G_parent · C · M · C⁻¹``; the root uses ``C`` from its
  ``orientation`` (order ``axis``) and ``M`` from the ``RX RY RZ`` channels of ``order``.
* A bone starts where its parent ends; its end (the joint this module reports for it) is
  ``p = p_parent + G · (length · direction)``, with ``direction`` a unit vector given in
  the global frame of the rest pose. The root joint is the root translation: the AMC
  ``TX TY TZ`` channels, or the ASF ``position`` for an axis with no channel.
* Lengths stay in the file's units (the ``:units length`` factor is recorded but not
  applied), which is how the ESTAG paper reports its motion errors.

Joint order: index 0 is the root, then the bones in the order of the ASF ``:bonedata``
section (for CMU skeletons that is the bone ``id``), so a CMU skeleton gives 31 joints.
Translation and length dofs (``tx ty tz l``) on bones are rejected: CMU data has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphdyn.errors import GraphdynError

_ROTATION_DOFS = ("rx", "ry", "rz")
_ROOT_CHANNELS = ("TX", "TY", "TZ", "RX", "RY", "RZ")


@dataclass
class Bone:
    """One ASF bone.

    ``direction`` [3] unit vector (global rest frame), ``length`` in file units, ``axis``
    [3] angles in radians with rotation ``axis_order`` (e.g. "XYZ"), ``dofs`` a tuple of
    ``"rx" | "ry" | "rz"`` in file order, ``limits`` [len(dofs), 2] in radians or None.
    """

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str = "XYZ"
    dofs: tuple[str, ...] = ()
    limits: np.ndarray | None = None
    id: int | None = None


@dataclass
class Skeleton:
    """A parsed ASF file.

    ``bones`` in ``:bonedata`` order; ``parents[i]`` is the joint index of bone ``i``'s parent
    (0 is the root, bone ``i`` is joint ``i + 1``). ``root_order`` lists the AMC root channels
    (e.g. ``("TX", "TY", "TZ", "RX", "RY", "RZ")``); ``root_axis`` the order of the root
    ``orientation`` angles; ``root_position`` [3] and ``root_orientation`` [3] (radians).
    """

    name: str
    bones: list[Bone]
    parents: list[int]
    root_order: tuple[str, ...]
    root_axis: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    angle_unit: str = "deg"
    length_scale: float = 1.0
    mass_scale: float = 1.0
    path: str | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {b.name: i for i, b in enumerate(self.bones)}

    @property
    def n_joints(self) -> int:
        """Root plus one joint per bone."""
        return len(self.bones) + 1

    @property
    def joint_names(self) -> list[str]:
        return ["root", *(b.name for b in self.bones)]

    def bone_index(self, name: str) -> int | None:
        return self._index.get(name)


@dataclass
class Motion:
    """A parsed AMC file for a given skeleton (``F`` frames).

    ``root`` [F, len(root_order)] channel values (translations in file units, rotations in
    radians); ``dofs[name]`` [F, len(bone.dofs)] in radians for every bone with dofs;
    ``frame_numbers`` [F] as written in the file.
    """

    root: np.ndarray
    dofs: dict[str, np.ndarray]
    frame_numbers: np.ndarray
    path: str | None = None

    @property
    def n_frames(self) -> int:
        return int(self.root.shape[0])

    def select_frames(self, frames: slice | np.ndarray) -> "Motion":
        """The same motion restricted to ``frames`` (e.g. ``slice(6, None)``)."""
        return Motion(self.root[frames], {k: v[frames] for k, v in self.dofs.items()}, self.frame_numbers[frames], self.path)


# ---------------------------------------------------------------------------- rotations
def euler_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices for fixed-axis Euler angles applied in ``order``.

    ``angles`` [..., len(order)] in radians, ``order`` a string over ``"XYZ"`` (e.g. "XYZ",
    "ZX"); angle ``k`` turns about axis ``order[k]``. Returns [..., 3, 3] with
    ``R = R_{order[-1]} · ... · R_{order[0]}`` (the first listed rotation acts first).
    """
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3)).copy()
    for k, ax in enumerate(order.upper()):
        out = _axis_rotation(angles[..., k], ax) @ out
    return out


def _axis_rotation(theta: np.ndarray, axis: str) -> np.ndarray:
    """[..., 3, 3] rotation by ``theta`` (radians, right-handed) about ``axis`` in X, Y, Z."""
    c, s = np.cos(theta), np.sin(theta)
    one, zero = np.ones_like(theta), np.zeros_like(theta)
    if axis == "X":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "Y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    elif axis == "Z":
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    else:
        raise ValueError(f"unknown rotation axis {axis!r}")
    return np.stack([np.stack(r, -1) for r in rows], -2)


# ---------------------------------------------------------------------------- ASF parser
class _Lines:
    """Numbered, comment-stripped, non-empty lines of a text file, with error helpers."""

    def __init__(self, path: Path):
        self.path = path
        try:
            text = path.read_text(errors="strict")
        except FileNotFoundError:
            raise GraphdynError("file not found", path=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GraphdynError(f"cannot read as text ({exc.__class__.__name__})", path=path) from None
        self.items = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                self.items.append((n, line))

    def fail(self, lineno: int | None, problem: str) -> GraphdynError:
        where = f"line {lineno}: " if lineno is not None else ""
        return GraphdynError(where + problem, path=self.path)

    def floats(self, lineno: int, words: list[str], count: int, what: str) -> np.ndarray:
        if len(words) < count:
            raise self.fail(lineno, f"{what}: expected {count} numbers, got {len(words)}")
        try:
            return np.array([float(w) for w in words[:count]])
        except ValueError:
            raise self.fail(lineno, f"{what}: expected numbers, got {' '.join(words[:count])!r}") from None


def read_asf(path: str | Path) -> Skeleton:
    """Parse an Acclaim ``.asf`` skeleton file.

    Raises :class:`GraphdynError` naming the file and line for anything malformed: unknown
    sections or keywords, bad numbers, a bone without length or direction, unsupported dofs,
    a hierarchy naming an undefined bone, or bones the hierarchy does not reach.
    """
    path = Path(path)
    lines = _Lines(path)
    units = {"mass": 1.0, "length": 1.0, "angle": "deg"}
    root = {"order": None, "axis": "XYZ", "position": np.zeros(3), "orientation": np.zeros(3)}
    raw_bones: list[dict] = []
    children: dict[str, list[tuple[int, str]]] = {}
    name = path.stem
    section = None
    in_block = False
    cur: dict | None = None
    hier_lines: list[tuple[int, list[str]]] = []
    limit_rows_wanted = 0

    for n, line in lines.items:
        words = line.split()
        key = words[0]
        if key.startswith(":"):
            if in_block and section == ":bonedata":
                raise lines.fail(n, f"section {key} starts inside an unfinished bone block (missing 'end')")
            section, in_block, limit_rows_wanted = key.lower(), False, 0
            if section == ":name" and len(words) > 1:
                name = words[1]
            elif section not in (":version", ":name", ":units", ":documentation", ":root", ":bonedata", ":hierarchy"):
                raise lines.fail(n, f"unknown section {key}")
            continue
        if section is None:
            raise lines.fail(n, f"text before the first section: {line!r}")
        if section == ":documentation" or section in (":version", ":name"):
            continue
        if section == ":units":
            if key == "angle":
                unit = words[1].lower() if len(words) > 1 else ""
                if unit not in ("deg", "rad"):
                    raise lines.fail(n, f"angle unit must be deg or rad, got {unit!r}")
                units["angle"] = unit
            elif key in ("mass", "length"):
                units[key] = float(lines.floats(n, words[1:], 1, key)[0])
            else:
                raise lines.fail(n, f"unknown unit {key!r}")
            continue
        if section == ":root":
            if key == "order":
                order = tuple(w.upper() for w in words[1:])
                bad = [w for w in order if w not in _ROOT_CHANNELS]
                if bad or len(set(order)) != len(order):
                    raise lines.fail(n, f"root order must list distinct channels among {' '.join(_ROOT_CHANNELS)}, got {' '.join(words[1:])}")
                root["order"] = order
            elif key == "axis":
                root["axis"] = _axis_order(lines, n, words[1] if len(words) > 1 else "")
            elif key in ("position", "orientation"):
                root[key] = lines.floats(n, words[1:], 3, f"root {key}")
            else:
                raise lines.fail(n, f"unknown root keyword {key!r}")
            continue
        if section == ":bonedata":
            if key == "begin":
                if in_block:
                    raise lines.fail(n, "'begin' inside an unfinished bone block")
                in_block, cur, limit_rows_wanted = True, {"line": n, "dofs": (), "limits": []}, 0
                continue
            if not in_block:
                raise lines.fail(n, f"{key!r} outside a begin/end bone block")
            if key == "end":
                _finish_bone(lines, cur, len(cur["limits"]) if cur["limits"] else None)
                raw_bones.append(cur)
                in_block, cur, limit_rows_wanted = False, None, 0
                continue
            if limit_rows_wanted and key.startswith("("):
                cur["limits"].append(_limit_row(lines, n, line))
                limit_rows_wanted -= 1
                continue
            if key == "id":
                cur["id"] = int(lines.floats(n, words[1:], 1, "id")[0])
            elif key == "name":
                if len(words) < 2:
                    raise lines.fail(n, "bone name missing")
                cur["name"] = words[1]
            elif key == "direction":
                cur["direction"] = lines.floats(n, words[1:], 3, "direction")
            elif key == "length":
                cur["length"] = float(lines.floats(n, words[1:], 1, "length")[0])
            elif key == "axis":
                cur["axis"] = lines.floats(n, words[1:], 3, "axis")
                cur["axis_order"] = _axis_order(lines, n, words[4] if len(words) > 4 else "XYZ")
            elif key == "dof":
                dofs = tuple(w.lower() for w in words[1:])
                unsupported = [d for d in dofs if d not in _ROTATION_DOFS]
                if unsupported:
                    raise lines.fail(n, f"bone {cur.get('name', '?')}: dof {' '.join(unsupported)} not supported (only rx ry rz)")
                if len(set(dofs)) != len(dofs):
                    raise lines.fail(n, f"bone {cur.get('name', '?')}: repeated dof")
                cur["dofs"] = dofs
            elif key == "limits":
                cur["limits"] = [_limit_row(lines, n, line[len("limits"):].strip())]
                limit_rows_wanted = len(cur["dofs"]) - 1
            elif key == "bodymass" or key == "cofmass":
                pass  # physical properties; not needed for kinematics
            else:
                raise lines.fail(n, f"unknown bone keyword {key!r}")
            continue
        if section == ":hierarchy":
            if key in ("begin", "end"):
                continue
            hier_lines.append((n, words))

    if in_block:
        raise lines.fail(cur["line"], "bone block not closed with 'end' (file truncated?)")
    if root["order"] is None:
        raise lines.fail(None, "no ':root' section with an 'order' line")
    if not raw_bones:
        raise lines.fail(None, "no bones in ':bonedata'")
    if not hier_lines:
        raise lines.fail(None, "no ':hierarchy' section")

    names = [b["name"] for b in raw_bones]
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise lines.fail(None, f"bone {dup!r} defined twice")
    index = {nm: i + 1 for i, nm in enumerate(names)}  # joint index; root is 0
    index["root"] = 0
    parents = [-1] * len(names)
    for n, words in hier_lines:
        for w in words:
            if w not in index:
                raise lines.fail(n, f"hierarchy names unknown bone {w!r}")
        for child in words[1:]:
            if child == "root":
                raise lines.fail(n, "the root cannot be a child")
            if parents[index[child] - 1] != -1:
                raise lines.fail(n, f"bone {child!r} has two parents")
            parents[index[child] - 1] = index[words[0]]
    # every bone must hang from the root, without cycles
    depth = {0: 0}
    for _ in range(len(names)):
        for i, p in enumerate(parents):
            if p in depth and (i + 1) not in depth:
                depth[i + 1] = depth[p] + 1
    unreached = [names[i] for i in range(len(names)) if (i + 1) not in depth]
    if unreached:
        raise lines.fail(None, f"bones not connected to the root by the hierarchy: {', '.join(unreached)}")

    scale = np.pi / 180.0 if units["angle"] == "deg" else 1.0
    bones = []
    for b in raw_bones:
        limits = np.array(b["limits"]) * scale if b["limits"] else None
        direction = b["direction"]
        norm = np.linalg.norm(direction)
        # a zero direction carries no geometry; CMU files give unit vectors, others may not
        direction = direction / norm if norm > 0 else direction
        bones.append(Bone(b["name"], direction, b["length"], b.get("axis", np.zeros(3)) * scale,
                          b.get("axis_order", "XYZ"), b["dofs"], limits, b.get("id")))
    return Skeleton(
        name=name, bones=bones, parents=parents, root_order=root["order"], root_axis=root["axis"],
        root_position=root["position"], root_orientation=root["orientation"] * scale,
        angle_unit=units["angle"], length_scale=units["length"], mass_scale=units["mass"], path=str(path),
    )


def _axis_order(lines: _Lines, n: int, word: str) -> str:
    order = word.upper()
    if not order or any(c not in "XYZ" for c in order) or len(set(order)) != len(order):
        raise lines.fail(n, f"axis order must be letters of XYZ, e.g. XYZ, got {word!r}")
    return order


def _limit_row(lines: _Lines, n: int, text: str) -> tuple[float, float]:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise lines.fail(n, f"limits must look like (min max), got {text!r}")
    words = inner[1:-1].split()
    try:
        vals = [float(w) for w in words]  # float() accepts inf and -inf
    except ValueError:
        vals = []
    if len(vals) != 2:
        raise lines.fail(n, f"limits must look like (min max), got {text!r}")
    return vals[0], vals[1]


def _finish_bone(lines: _Lines, bone: dict, n_limits: int | None) -> None:
    for key in ("name", "direction", "length"):
        if key not in bone:
            raise lines.fail(bone["line"], f"bone block without '{key}'")
    if n_limits is not None and n_limits != len(bone["dofs"]):
        raise lines.fail(bone["line"], f"bone {bone['name']}: {n_limits} limit rows for {len(bone['dofs'])} dofs")


# ---------------------------------------------------------------------------- AMC parser
def read_amc(path: str | Path, skeleton: Skeleton) -> Motion:
    """Parse an Acclaim ``.amc`` motion file for ``skeleton``.

    Every frame must give the root and every bone that has dofs, each once, with as many
    numbers as the skeleton declares. Problems (an unknown bone, a wrong value count, a
    non-number, a truncated last frame) raise a one-line :class:`GraphdynError` naming the
    file, the line and the bone.
    """
    path = Path(path)
    lines = _Lines(path)
    moving = {b.name: len(b.dofs) for b in skeleton.bones if b.dofs}
    expected = {"root": len(skeleton.root_order), **moving}
    radians = skeleton.angle_unit == "rad"
    frame_numbers: list[int] = []
    values: dict[str, list[list[float]]] = {k: [] for k in expected}
    seen: set[str] = set()
    frame_line = None

    def close_frame() -> None:
        if frame_line is not None and len(seen) != len(expected):
            missing = sorted(set(expected) - seen)
            raise lines.fail(frame_line, f"frame {frame_numbers[-1]} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (file truncated?)")

    for n, line in lines.items:
        if line.startswith(":"):
            word = line.split()[0].upper()
            if word == ":RADIANS":
                radians = True
            elif word == ":DEGREES":
                radians = False
            elif frame_line is not None:
                raise lines.fail(n, f"header line {word} after the first frame")
            continue
        words = line.split()
        if len(words) == 1 and words[0].isdigit():
            close_frame()
            frame_numbers.append(int(words[0]))
            frame_line, seen = n, set()
            continue
        bone = words[0]
        if frame_line is None:
            raise lines.fail(n, f"data before the first frame number: {line[:40]!r}")
        if bone not in expected:
            skel_name = Path(skeleton.path).name if skeleton.path else skeleton.name
            if skeleton.bone_index(bone) is not None:
                raise lines.fail(n, f"bone {bone!r} has no dofs in skeleton {skel_name}")
            raise lines.fail(n, f"unknown bone {bone!r} (not in skeleton {skel_name})")
        if bone in seen:
            raise lines.fail(n, f"bone {bone!r} given twice in frame {frame_numbers[-1]}")
        count = expected[bone]
        if len(words) - 1 != count:
            raise lines.fail(n, f"bone {bone!r}: expected {count} values, got {len(words) - 1}")
        try:
            nums = [float(w) for w in words[1:]]
        except ValueError:
            raise lines.fail(n, f"bone {bone!r}: values are not numbers: {' '.join(words[1:])[:60]!r}") from None
        values[bone].append(nums)
        seen.add(bone)
    close_frame()
    if not frame_numbers:
        raise lines.fail(None, "no frames")

    scale = 1.0 if radians else np.pi / 180.0
    root = np.array(values["root"], dtype=np.float64).reshape(len(frame_numbers), len(skeleton.root_order))
    rot_cols = [k for k, ch in enumerate(skeleton.root_order) if ch.startswith("R")]
    root[:, rot_cols] *= scale
    dofs = {k: np.array(v, dtype=np.float64).reshape(len(frame_numbers), expected[k]) * scale for k, v in values.items() if k != "root"}
    for k, arr in (("root", root), *dofs.items()):
        if not np.isfinite(arr).all():
            f = int(np.argwhere(~np.isfinite(arr))[0, 0])
            raise lines.fail(None, f"bone {k!r}: non-finite value in frame {frame_numbers[f]}")
    return Motion(root=root, dofs=dofs, frame_numbers=np.array(frame_numbers), path=str(path))


# ---------------------------------------------------------------------------- kinematics
def joint_positions(skeleton: Skeleton, motion: Motion) -> np.ndarray:
    """3-D joint positions of every frame by forward kinematics.

    Returns ``[F, J, 3]`` float64 in file length units, ``J = 1 + len(bones)`` (31 for a
    CMU skeleton): joint 0 the root translation, joint ``i + 1`` the end of bone ``i``.
    See the module docstring for the rotation conventions.
    """
    F = motion.n_frames
    order = skeleton.root_order
    trans = np.broadcast_to(skeleton.root_position, (F, 3)).copy()
    for k, ch in enumerate("XYZ"):
        if f"T{ch}" in order:
            trans[:, k] = motion.root[:, order.index(f"T{ch}")]
    rot_channels = [ch for ch in order if ch.startswith("R")]
    root_m = euler_matrix(motion.root[:, [order.index(ch) for ch in rot_channels]], "".join(ch[1] for ch in rot_channels))
    root_c = euler_matrix(skeleton.root_orientation, skeleton.root_axis)
    glob = {0: root_c @ root_m @ root_c.T}  # joint -> [F, 3, 3] global rotation
    pos = np.empty((F, skeleton.n_joints, 3))
    pos[:, 0] = trans
    # bones are visited parent-first: the ASF may list a child before its parent
    for i in _topological_order(skeleton.parents):
        bone = skeleton.bones[i]
        c = euler_matrix(bone.axis, bone.axis_order)
        if bone.dofs:
            m = euler_matrix(motion.dofs[bone.name], "".join(d[1].upper() for d in bone.dofs))
            local = c @ m @ c.T
        else:
            local = np.broadcast_to(np.eye(3), (F, 3, 3))
        g = glob[skeleton.parents[i]] @ local
        glob[i + 1] = g
        pos[:, i + 1] = pos[:, skeleton.parents[i]] + g @ (bone.length * bone.direction)
    return pos


def _topological_order(parents: list[int]) -> list[int]:
    """Bone indices with every parent before its children (parents are joint indices)."""
    done, out = {0}, []
    while len(out) < len(parents):
        for i, p in enumerate(parents):
            if (i + 1) not in done and p in done:
                done.add(i + 1)
                out.append(i)
    return out


def skeleton_edges(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Bone edges and 2-hop edges of the joint graph, both directions.

    Returns ``edge_index`` [2, E] int64 (row 0 receiver i, row 1 sender j) and
    ``edge_attr`` [E, 1] float: 1 for a bone (parent-child pair), 2 for two joints sharing a
    neighbour (A² ≠ 0, i ≠ j; in a tree no pair is both). Edges are sorted by (i, j).
    """
    J = skeleton.n_joints
    adj = np.zeros((J, J), dtype=np.int64)
    for i, p in enumerate(skeleton.parents):
        adj[i + 1, p] = adj[p, i + 1] = 1
    two_hop = (adj @ adj > 0) & (adj == 0)
    np.fill_diagonal(two_hop, False)
    kind = adj + 2 * two_hop
    recv, send = np.nonzero(kind)
    return np.stack([recv, send]).astype(np.int64), kind[recv, send][:, None].astype(np.float64)


# ---------------------------------------------------------------------------- summaries
def find_skeleton(amc: str | Path) -> Path | None:
    """The ASF beside an AMC: ``<subject>.asf`` for ``<subject>_<trial>.amc``, else the
    folder's only ``.asf``; None when neither exists."""
    amc = Path(amc)
    named = amc.with_name(amc.stem.split("_")[0] + ".asf")
    if named.exists():
        return named
    candidates = sorted(amc.parent.glob("*.asf"))
    return candidates[0] if len(candidates) == 1 else None


def describe_file(path: str | Path) -> dict:
    """A JSON-serialisable summary of an ``.asf`` or ``.amc`` file (for ``graphdyn data info``).

    An ``.amc`` is read with the skeleton found by :func:`find_skeleton` and summarised with
    its frame count and the range of its forward-kinematics joint positions.
    """
    path = Path(path)
    if path.suffix.lower() == ".asf":
        skel = read_asf(path)
        edge_index, edge_attr = skeleton_edges(skel)
        return {
            "format": "Acclaim ASF skeleton",
            "file": str(path),
            "name": skel.name,
            "joints": skel.n_joints,
            "bones": len(skel.bones),
            "dofs": sum(len(b.dofs) for b in skel.bones) + len(skel.root_order),
            "edges": int(edge_index.shape[1]),
            "edges_by_kind": {"bone": int((edge_attr == 1).sum()), "two_hop": int((edge_attr == 2).sum())},
            "root_order": " ".join(skel.root_order),
            "units": {"length": skel.length_scale, "angle": skel.angle_unit, "mass": skel.mass_scale},
            "joint_names": skel.joint_names,
        }
    asf = find_skeleton(path)
    if asf is None:
        raise GraphdynError(f"no skeleton found: put the subject's .asf ({path.stem.split('_')[0]}.asf) in the same folder", path=path)
    skel = read_asf(asf)
    motion = read_amc(path, skel)
    pos = joint_positions(skel, motion)
    return {
        "format": "Acclaim AMC motion",
        "file": str(path),
        "skeleton": str(asf),
        "frames": motion.n_frames,
        "joints": skel.n_joints,
        "first_frame_number": int(motion.frame_numbers[0]),
        "position_min": pos.min(axis=(0, 1)).round(4).tolist(),
        "position_max": pos.max(axis=(0, 1)).round(4).tolist(),
        "units": {"length": f"ASF length unit (:units length {skel.length_scale:g})", "angle": skel.angle_unit},
    }
