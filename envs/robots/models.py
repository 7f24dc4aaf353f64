"""What the testbed knows about each robot model from pybullet_data (data, not code paths).

The quirks recorded here were measured with PyBullet 3.2.7 (see DESIGN.md, simulation notes):
IK returns one value per movable joint, gripper joints included, so the arm's joints are mapped
by their index in the movable-joint list; KUKA's SDF has a motorless joint and bogus limits;
the xArm6 has no tool-centre link, so the tool is an offset from its gripper base. `FingerInfo`
records how each model's own parallel-jaw fingers are driven when a site grips with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INNER_RADIUS_M = 0.25
"""The controller never commands the tool closer than this to the base axis (horizontally)."""
MAX_HEIGHT_ABOVE_BASE_M = 1.0
"""The controller never commands the tool higher than this above the base."""


@dataclass(frozen=True)
class FingerInfo:
    """How to drive a model's parallel-jaw fingers (`envs.cells.fingers`).

    Attributes:
        joints: Every gripper joint the finger motors drive (all six of the xArm's: PyBullet
            ignores ``<mimic>``).
        open: Joint positions with the jaws at `max_opening_m`.
        closed: Joint targets while gripping: past the point where the pads meet, so a part
            of any width between them is squeezed with the full grip force.
        max_opening_m: Gap between the pads at `open` (measured, PyBullet 3.2.7).
        lever_m: Per joint, metres from a revolute joint's axis to the pads: its motor's torque
            limit is the grip force times this; 0 for a prismatic joint (force is force).
        pads: The links of each jaw that touch a part (left jaw, right jaw).
        gear: Two jaw joints (by their child links) a gear constraint keeps mirrored, and the
            gear ratio (PyBullet's sign convention), or None. Each jaw's motor pushes with the
            grip force, so nothing else keeps a part centred: the Panda's prismatic fingers
            drift off centre (bullet3#2101), and so do the xArm's knuckles (no ``<mimic>``).
        jaw_yaw: Direction (world yaw, rad) the jaws close along when the tool points straight
            down with no yaw (measured): the tool is turned so they close across the belt.
        jaw_reach_m: How far the open jaws' outer faces reach from the tool centre along the
            closing direction, at `max_opening_m` (measured AABBs of the pad links): room a
            neighbour must leave beside a part the jaws straddle.
        jaw_half_width_m: Half the jaws' extent across the closing direction (same probe).
        tool_offset: The tool centre point between the fingertips (tool link frame), where
            it differs from the model's `RobotModelInfo.tool_offset`; None where it does not.
    """

    joints: tuple[int, ...]
    open: tuple[float, ...]
    closed: tuple[float, ...]
    max_opening_m: float
    lever_m: tuple[float, ...]
    pads: tuple[tuple[int, ...], tuple[int, ...]]
    gear: tuple[int, int, float] | None
    jaw_yaw: float
    jaw_reach_m: float
    jaw_half_width_m: float
    tool_offset: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class RobotModelInfo:
    """How to load one robot model and drive it as a Cartesian arm with a top-down tool.

    Attributes:
        file: Path inside pybullet_data.
        loader: ``urdf`` or ``sdf``.
        arm_joints: Joint indices of the arm, base to tip.
        tool_link: Link whose frame carries the tool.
        tool_offset: Tool centre point in `tool_link`'s frame (m).
        rest_pose: Arm joint angles of the ready pose (tool down, above the workspace).
        finger_joints: Gripper joints held closed (they are not actuated with suction).
        finger_closed: Joint position that keeps the fingers closed.
        fingers: The fingers as a gripper (a site with ``gripper.kind: fingers``).
        use_null_space: Pass limits and rest pose to IK (needs sane joint limits).
        reach_m: Horizontal reach of the tool used to bound the workspace.
        footprint: Box (min corner, max corner; base frame, m) that holds the links that do
            not move and the sweep of the first arm link about the base axis: stations must
            stay out of it (measured AABBs, PyBullet 3.2.7).
        max_drive_motor_w: Rated power of the model's largest drive motor (W), for the
            low-power exemption (`envs.safety.safeguards`); None: no citable per-motor
            rating was found for the model (the xArm6 manual gives only the whole arm's
            consumption, typical 200 W), so the exemption cannot be assessed.
    """

    file: str
    loader: str
    arm_joints: tuple[int, ...]
    tool_link: int
    tool_offset: tuple[float, float, float]
    rest_pose: tuple[float, ...]
    finger_joints: tuple[int, ...]
    finger_closed: tuple[float, ...]
    use_null_space: bool
    reach_m: float
    footprint: tuple[tuple[float, float, float], tuple[float, float, float]]
    fingers: FingerInfo
    max_drive_motor_w: float | None = None


ROBOT_MODELS: dict[str, RobotModelInfo] = {
    "panda": RobotModelInfo(
        file="franka_panda/panda.urdf",
        loader="urdf",
        arm_joints=(0, 1, 2, 3, 4, 5, 6),
        tool_link=11,  # panda_grasptarget; the finger tips reach ~12 mm below it
        tool_offset=(0.0, 0.0, 0.012),
        rest_pose=(0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785),
        finger_joints=(9, 10),
        finger_closed=(0.0, 0.0),
        use_null_space=True,
        reach_m=0.80,
        footprint=((-0.158, -0.146, 0.0), (0.146, 0.146, 0.392)),
        fingers=FingerInfo(
            joints=(9, 10),
            open=(0.04, 0.04),
            closed=(0.0, 0.0),
            max_opening_m=0.078,
            lever_m=(0.0, 0.0),
            pads=((9,), (10,)),
            gear=(9, 10, -1.0),
            jaw_yaw=math.pi / 2.0,
            jaw_reach_m=0.070,
            jaw_half_width_m=0.015,
        ),
    ),
    "kuka_iiwa": RobotModelInfo(
        file="kuka_iiwa/kuka_with_gripper2.sdf",
        loader="sdf",
        arm_joints=(0, 1, 2, 3, 4, 5, 6),
        tool_link=7,  # gripper base; the finger tips end 0.243 m further along its z axis
        tool_offset=(0.0, 0.0, 0.244),
        rest_pose=(0.0, -0.1, 0.0, -1.85, 0.0, 1.4, -1.571),
        finger_joints=(8, 11),
        finger_closed=(0.0, 0.0),
        use_null_space=False,  # null-space IK diverges on this SDF (bogus limits, probed)
        reach_m=0.85,
        footprint=((-0.223, -0.223, 0.0), (0.224, 0.223, 0.378)),  # link 0 sits off the axis
        fingers=FingerInfo(  # revolute jaws (8, 11) and tips (10, 13), as pybullet's kuka.py
            joints=(8, 10, 11, 13),
            open=(-0.3, 0.0, 0.3, 0.0),
            closed=(0.1, 0.0, -0.1, 0.0),
            max_opening_m=0.107,
            lever_m=(0.13, 0.13, 0.13, 0.13),  # tips as stiff as the jaws, or they fold
            pads=((8, 10), (11, 13)),
            gear=(8, 11, 1.0),
            jaw_yaw=0.0,
            jaw_reach_m=0.086,
            jaw_half_width_m=0.013,
            tool_offset=(0.0, 0.022, 0.244),  # the tips sit 22 mm off the wrist axis
        ),
    ),
    "xarm6": RobotModelInfo(
        file="xarm/xarm6_with_gripper.urdf",
        loader="urdf",
        arm_joints=(1, 2, 3, 4, 5, 6),
        tool_link=7,  # xarm_gripper_base_link
        tool_offset=(0.0, 0.0, 0.179),  # just below the finger tips (measured AABB)
        rest_pose=(0.0, -0.4, -0.9, 0.0, 1.3, 0.0),
        finger_joints=(8, 9, 10, 11, 12, 13),  # <mimic> is ignored: command all six
        finger_closed=(0.85, 0.85, 0.85, 0.85, 0.85, 0.85),
        use_null_space=True,
        reach_m=0.70,
        footprint=((-0.097, -0.096, 0.0), (0.096, 0.096, 0.32)),
        fingers=FingerInfo(  # knuckles 8, 11 swing the fingers 9, 12; 10, 13 ride along
            joints=(8, 9, 10, 11, 12, 13),
            open=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
            closed=(0.85, 0.85, 0.85, 0.85, 0.85, 0.85),
            max_opening_m=0.087,
            lever_m=(0.06, 0.06, 0.06, 0.06, 0.06, 0.06),
            pads=((8, 9, 10), (11, 12, 13)),
            gear=(8, 11, -1.0),
            jaw_yaw=math.pi / 2.0,
            jaw_reach_m=0.089,
            jaw_half_width_m=0.019,
        ),
    ),
}
