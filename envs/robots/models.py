"""What the testbed knows about each robot model from pybullet_data (data, not code paths).

The quirks recorded here were measured with PyBullet 3.2.7 (see DESIGN.md, simulation notes):
IK returns one value per movable joint, gripper joints included, so the arm's joints are mapped
by their index in the movable-joint list; KUKA's SDF has a motorless joint and bogus limits;
the xArm6 has no tool-centre link, so the tool is an offset from its gripper base.
"""

from __future__ import annotations

from dataclasses import dataclass

INNER_RADIUS_M = 0.25
"""The controller never commands the tool closer than this to the base axis (horizontally)."""
MAX_HEIGHT_ABOVE_BASE_M = 1.0
"""The controller never commands the tool higher than this above the base."""


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
        use_null_space: Pass limits and rest pose to IK (needs sane joint limits).
        reach_m: Horizontal reach of the tool used to bound the workspace.
        footprint: Box (min corner, max corner; base frame, m) that holds the links that do
            not move and the sweep of the first arm link about the base axis: stations must
            stay out of it (measured AABBs, PyBullet 3.2.7).
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
    ),
}
