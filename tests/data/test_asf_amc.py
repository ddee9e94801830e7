"""ASF/AMC parsing and forward kinematics, on real CMU data (01_01) and hand-made skeletons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphdyn.data.asf_amc import euler_matrix, joint_positions, read_amc, read_asf, skeleton_edges
from graphdyn.errors import GraphdynError

FILES = Path(__file__).parent / "files" / "mocap"
ASF = FILES / "01.asf"
AMC = FILES / "01_01.amc"


@pytest.fixture(scope="module")
def real():
    skel = read_asf(ASF)
    motion = read_amc(AMC, skel)
    return skel, motion, joint_positions(skel, motion)


def test_real_cmu_trial_parses(real):
    skel, motion, pos = real
    assert skel.n_joints == 31 and len(skel.bones) == 30
    assert skel.joint_names[:3] == ["root", "lhipjoint", "lfemur"]
    assert skel.root_order == ("TX", "TY", "TZ", "RX", "RY", "RZ")
    assert skel.length_scale == pytest.approx(0.45) and skel.angle_unit == "deg"
    assert motion.n_frames == 120
    np.testing.assert_array_equal(motion.frame_numbers, np.arange(1, 121))
    assert set(motion.dofs) == {b.name for b in skel.bones if b.dofs} and len(motion.dofs) == 28
    assert pos.shape == (120, 31, 3) and np.isfinite(pos).all()
    # first frame's root translation is read verbatim from the file
    np.testing.assert_allclose(pos[0, 0], [9.37216, 17.8693, -17.3198])
    # a standing person with y up: head well above the root, toes near the floor
    names = skel.joint_names
    assert (pos[:, names.index("head"), 1] > pos[:, 0, 1] + 5).all()
    assert (pos[:, names.index("ltoes"), 1] < 6).all()


def test_bone_lengths_constant_over_frames(real):
    skel, _, pos = real
    lengths = np.linalg.norm(pos[:, 1:] - pos[:, skel.parents], axis=-1)  # [F, 30]
    expected = np.array([b.length for b in skel.bones])
    np.testing.assert_allclose(lengths, np.broadcast_to(expected, lengths.shape), rtol=1e-9)


def test_zero_motion_gives_rest_pose(real):
    skel, motion, _ = real
    still = motion.select_frames(slice(0, 1))
    still.root[:] = 0.0
    for v in still.dofs.values():
        v[:] = 0.0
    pos = joint_positions(skel, still)[0]
    rest = np.zeros((31, 3))
    for i in range(30):  # parents come before children in the CMU bonedata order
        rest[i + 1] = rest[skel.parents[i]] + skel.bones[i].length * skel.bones[i].direction
    np.testing.assert_allclose(pos, rest, atol=1e-12)


def test_euler_order_is_first_listed_first():
    a = np.deg2rad([10.0, 20.0, 30.0])
    rx, ry, rz = (euler_matrix(np.array([t]), ax) for t, ax in zip(a, "XYZ"))
    np.testing.assert_allclose(euler_matrix(a, "XYZ"), rz @ ry @ rx, atol=1e-15)
    np.testing.assert_allclose(euler_matrix(a[::-1], "ZYX"), rx @ ry @ rz, atol=1e-15)
    np.testing.assert_allclose(euler_matrix(np.array([np.pi / 2]), "Z") @ [1, 0, 0], [0, 1, 0], atol=1e-15)


CHAIN_ASF = """\
# three bones: a (rx, axis rotated 90 deg about z), b (no dof), c (dof rz rx)
:version 1.10
:name chain
:units
  mass 1.0
  length 1.0
  angle {unit}
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 1 0 0
     length 2
     axis 0 0 {quarter} XYZ
    dof rx
    limits (-180.0 180.0)
  end
  begin
     id 2
     name b
     direction 0 1 0
     length 1
     axis 0 0 0 XYZ
  end
  begin
     id 3
     name c
     direction 1 0 0
     length 1
     axis 0 0 0 XYZ
    dof rz rx
    limits (-inf inf)
           (-180 180)
  end
:hierarchy
  begin
    root a
    a b c
  end
"""

CHAIN_AMC = """\
:FULLY-SPECIFIED
{header}
1
root 1 2 3 0 0 {quarter}
a {quarter}
c {quarter} {quarter}
"""


@pytest.mark.parametrize("unit", ["deg", "rad"])
def test_hand_computed_chain(tmp_path, unit):
    quarter = "90" if unit == "deg" else repr(np.pi / 2)
    (tmp_path / "chain.asf").write_text(CHAIN_ASF.format(unit=unit, quarter=quarter))
    (tmp_path / "chain.amc").write_text(CHAIN_AMC.format(header=":DEGREES" if unit == "deg" else ":RADIANS", quarter=quarter))
    skel = read_asf(tmp_path / "chain.asf")
    pos = joint_positions(skel, read_amc(tmp_path / "chain.amc", skel))[0]
    # Root: Rz(90). Bone a: C = Rz(90), M = Rx(90), so C M C^-1 is a quarter turn about y;
    # global G_a = Rz(90) Ry(90) sends x to -z: end a = (1,2,3) + 2 (0,0,-1).
    # Bone b: G_b = G_a sends y to (-1,0,0). Bone c: M = Rx(90) Rz(90) (rz listed first) sends
    # x to z, then G_a sends z to y.
    expected = np.array([[1, 2, 3], [1, 2, 1], [0, 2, 1], [1, 3, 1]], dtype=float)
    np.testing.assert_allclose(pos, expected, atol=1e-12)
    assert skel.bones[2].limits.shape == (2, 2) and np.isinf(skel.bones[2].limits[0]).all()


def test_skeleton_edges_bones_and_two_hop(real):
    skel = real[0]
    ei, ea = skeleton_edges(skel)
    assert ei.shape[0] == 2 and ea.shape == (ei.shape[1], 1)
    assert (ei[0] != ei[1]).all()
    pairs = set(map(tuple, ei.T))
    assert all((j, i) in pairs for i, j in pairs)  # both directions
    bones = {(i + 1, p) for i, p in enumerate(skel.parents)} | {(p, i + 1) for i, p in enumerate(skel.parents)}
    assert {tuple(e) for e, a in zip(ei.T, ea[:, 0]) if a == 1} == bones
    # independent 2-hop set: graph distance exactly 2 by breadth-first search
    nbrs = {k: set() for k in range(31)}
    for i, j in bones:
        nbrs[i].add(j)
    two = {(i, k) for i in range(31) for j in nbrs[i] for k in nbrs[j] if k != i and k not in nbrs[i]}
    assert {tuple(e) for e, a in zip(ei.T, ea[:, 0]) if a == 2} == two
    assert ei.shape[1] == 60 + len(two) == 130


def _write_amc_frames(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_unknown_bone_names_file_line_and_bone(tmp_path, real):
    skel = real[0]
    lines = AMC.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("lowerback"))
    lines[i] = "lowerbak 1 2 3"
    bad = _write_amc_frames(tmp_path / "bad.amc", "\n".join(lines))
    with pytest.raises(GraphdynError) as err:
        read_amc(bad, skel)
    msg = str(err.value)
    assert "bad.amc" in msg and f"line {i + 1}" in msg and "'lowerbak'" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t[: t.index("\nrfemur", t.index("\n3\n"))], ["frame 3 lacks", "rfemur", "truncated"]),
        (lambda t: t.replace("rtibia 26.4457", "rtibia 26.4x57", 1), ["rtibia", "not numbers"]),
        (lambda t: t.replace("rtibia 26.4457", "rtibia 26.4457 1.0", 1), ["rtibia", "expected 1 values, got 2"]),
        (lambda t: t.replace("ltoes -4.61789", "ltoes -4.61789\nltoes 1", 1), ["ltoes", "twice"]),
        (lambda t: t.replace("\n1\n", "\n", 1), ["before the first frame"]),
        (lambda t: ":FULLY-SPECIFIED\n:DEGREES\n", ["no frames"]),
    ],
)
def test_garbled_amc_raises(tmp_path, real, edit, words):
    path = _write_amc_frames(tmp_path / "g.amc", edit(AMC.read_text().replace("\r\n", "\n")))
    with pytest.raises(GraphdynError) as err:
        read_amc(path, real[0])
    assert "g.amc" in str(err.value)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t[: t.index("     length 7.1578")], ["not closed", "truncated"]),
        (lambda t: t.replace("lfemur ltibia", "lfemur ltibiaa"), ["unknown bone 'ltibiaa'"]),
        (lambda t: t.replace("length 7.1578", "length seven"), ["length", "numbers"]),
        (lambda t: t.replace("dof rx ry rz", "dof rx ry tz", 1), ["tz", "not supported"]),
        (lambda t: t.replace("lfemur ltibia", "lfemur"), ["not connected", "ltibia"]),
        (lambda t: t.replace(":hierarchy", ":hierarchie"), ["unknown section"]),
    ],
)
def test_garbled_asf_raises(tmp_path, edit, words):
    path = tmp_path / "g.asf"
    path.write_text(edit(ASF.read_text().replace("\r\n", "\n")))
    with pytest.raises(GraphdynError) as err:
        read_asf(path)
    assert "g.asf" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(GraphdynError, match="file not found"):
        read_asf(tmp_path / "nope.asf")
    (tmp_path / "bin.asf").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(GraphdynError, match="cannot read as text"):
        read_asf(tmp_path / "bin.asf")


def test_describe_file_for_data_info(tmp_path):
    from graphdyn.data.asf_amc import describe_file

    asf = describe_file(ASF)
    assert asf["joints"] == 31 and asf["edges"] == 130 and asf["edges_by_kind"] == {"bone": 60, "two_hop": 70}
    amc = describe_file(AMC)  # finds 01.asf beside 01_01.amc
    assert amc["frames"] == 120 and amc["skeleton"].endswith("01.asf")
    lonely = tmp_path / "07_01.amc"
    lonely.write_text(AMC.read_text())
    with pytest.raises(GraphdynError, match="07.asf"):
        describe_file(lonely)
