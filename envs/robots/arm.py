"""One Cartesian controller interface for every robot: end-effector deltas in, joint targets out.

`CartesianArm` keeps a commanded tool position, moves it by the policy's delta (scaled by the
site's controller speed), solves IK at the control rate (not every physics step: that halves the
step cost) and hands joint targets to PD motors. The tool always points down.

Per control step it makes one IK call and one motor call: the gripper joints' motors are set
at reset and keep their targets (PyBullet motors hold until changed), the IK limits are built
once, and the tool point is rotated with plain floats (``np.cross`` cost ~15 us a call).
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from envs.factory.schema import ControllerSpec
from envs.robots.models import (
    INNER_RADIUS_M,
    MAX_HEIGHT_ABOVE_BASE_M,
    ROBOT_MODELS,
    RobotModelInfo,
)
from envs.sim import Quat, Sim, Vec3

TOOL_DOWN: Quat = (1.0, 0.0, 0.0, 0.0)  # roll = pi: the tool's z axis points at the floor
_JOINT_FIXED = 4
_MOTORLESS_FORCE_N = 100.0  # KUKA's SDF gives its wrist-to-gripper joint no motor at all
_TARGET_LEAD_M = 0.05  # how far the command may run ahead of the tool (no wind-up when blocked)


class CartesianArm:
    """A robot arm driven by tool-position deltas.

    Args:
        sim: The simulation the arm lives in.
        model: Key of `ROBOT_MODELS` (``panda``, ``kuka_iiwa``, ``xarm6``).
        base_position: World position of the robot base.
        base_yaw: Rotation of the base about z (rad).
        controller: The site's controller settings.
        workspace_min_z: Lowest tool height the controller will command (world z).
    """

    def __init__(
        self,
        sim: Sim,
        model: str,
        base_position: Vec3,
        base_yaw: float,
        controller: ControllerSpec,
        workspace_min_z: float,
    ) -> None:
        self.sim = sim
        self.info: RobotModelInfo = ROBOT_MODELS[model]
        self.controller = controller
        self.base_position = np.asarray(base_position, dtype=np.float64)
        self._base: Vec3 = (
            float(base_position[0]),
            float(base_position[1]),
            float(base_position[2]),
        )
        self.base_yaw = base_yaw
        self.workspace_min_z = workspace_min_z
        self.body = self._load(base_position, base_yaw)
        self.arm_joints = list(self.info.arm_joints)
        movable = [
            j
            for j in range(sim.num_joints(self.body))
            if sim.joint_info(self.body, j)[2] != _JOINT_FIXED
        ]
        self._ik_slots = [movable.index(j) for j in self.arm_joints]
        self._held_joints = [j for j in movable if j not in self.arm_joints]
        self._held_targets = self._closed_targets()
        self._forces = [self._joint_force(j) for j in self.arm_joints]
        self._held_forces = [self._joint_force(j) for j in self._held_joints]
        self._ik_options = self._ik_settings(movable)
        self._orientation: Quat = TOOL_DOWN
        self._turned = False  # whether set_tool chose the orientation (even yaw 0)
        self._offset: Vec3 = self.info.tool_offset
        self._link_offset = _rotate(TOOL_DOWN, self._offset)
        self._has_offset = any(self._offset)
        self.target = np.zeros(3)
        self.reset()

    def set_tool(self, yaw: float, offset: Vec3 | None = None) -> None:
        """Turn the downward tool by ``yaw`` (rad, about world z) from now on; 0 at first.

        A finger gripper turns its jaws this way to close across a part's narrow side, and
        may move the tool centre point (``offset``, in the tool link's frame; None keeps the
        model's) to the middle between its fingertips. The next `reset` starts with the tool
        turned.
        """
        half = yaw / 2.0
        self._orientation = (math.cos(half), math.sin(half), 0.0, 0.0)  # Rz(yaw) * TOOL_DOWN
        self._offset = self.info.tool_offset if offset is None else offset
        self._has_offset = any(self._offset)
        self._link_offset = _rotate(self._orientation, self._offset)
        self._turned = True

    # ------------------------------------------------------------------ set-up

    def _load(self, position: Vec3, yaw: float) -> int:
        orientation = self.sim.quat_from_euler((0.0, 0.0, yaw))
        if self.info.loader == "sdf":
            body = self.sim.load_sdf(self.info.file)[0]
            self.sim.reset_base(body, position, orientation)
            return body
        return self.sim.load_urdf(self.info.file, position, orientation, fixed=True)

    def _joint_force(self, joint: int) -> float:
        urdf_force = self.sim.joint_info(self.body, joint)[10]
        force = urdf_force if urdf_force > 0 else _MOTORLESS_FORCE_N
        return force * self.controller.joint_force_scale

    def _closed_targets(self) -> list[float]:
        closed = dict(zip(self.info.finger_joints, self.info.finger_closed, strict=True))
        return [closed.get(j, 0.0) for j in self._held_joints]

    def _ik_limits(self, movable: list[int]) -> tuple[list[float], list[float]]:
        # Null-space IK needs a sane range for every movable joint: gripper joints are pinned
        # near their held position and bogus (lower >= upper) arm limits become +-pi.
        held = dict(zip(self._held_joints, self._held_targets, strict=True))
        lower, upper = [], []
        for joint in movable:
            if joint in held:
                lo, hi = held[joint] - 0.05, held[joint] + 0.05
            else:
                lo, hi = self.sim.joint_info(self.body, joint)[8:10]
                if lo >= hi:
                    lo, hi = -math.pi, math.pi
            lower.append(lo)
            upper.append(hi)
        return lower, upper

    def _full_rest_pose(self, movable: list[int]) -> list[float]:
        rest = dict(zip(self.arm_joints, self.info.rest_pose, strict=True))
        held = dict(zip(self._held_joints, self._held_targets, strict=True))
        return [rest.get(j, held.get(j, 0.0)) for j in movable]

    def _ik_settings(self, movable: list[int]) -> dict[str, list[float]] | None:
        """Null-space IK settings, built once (None if the model does without)."""
        if not self.info.use_null_space:
            return None
        lower, upper = self._ik_limits(movable)
        return Sim.null_space_options(self._full_rest_pose(movable), lower, upper)

    def reset(self) -> None:
        """Put the arm in its ready pose and hold it there."""
        for joint, angle in zip(self.arm_joints, self.info.rest_pose, strict=True):
            self.sim.reset_joint(self.body, joint, angle)
        for joint, angle in zip(self._held_joints, self._held_targets, strict=True):
            self.sim.reset_joint(self.body, joint, angle)
        angles = list(self.info.rest_pose)
        if self._turned:  # the ready point with the tool turned exactly as set
            point = self.tool_state()[0]
            x, y, z = (float(v) for v in point)
            for _ in range(3):  # each solve starts from the last (IK from afar is off)
                angles = self._solve_ik((x, y, z))
                self.place_joints(angles)
        self.target = self.tool_state()[0].copy()
        self._drive(angles)

    # ------------------------------------------------------------------ state

    def tool_state(self) -> tuple[np.ndarray, np.ndarray]:
        """World position and linear velocity of the tool centre point."""
        position, orientation, velocity = self.sim.link_pose_velocity(
            self.body, self.info.tool_link
        )
        if self._has_offset:
            # The tool points down, so the offset along the link's z axis is (almost) world -z;
            # rotate it properly anyway so a tilted wrist reports the true tool point.
            ox, oy, oz = _rotate(orientation, self._offset)
            position = (position[0] + ox, position[1] + oy, position[2] + oz)
        return np.array(position, dtype=np.float64), np.array(velocity, dtype=np.float64)

    # ------------------------------------------------------------------ control

    def command(self, delta: np.ndarray, tool: np.ndarray | None = None) -> None:
        """Move the commanded tool position by `delta` (m) and drive the joints toward it.

        Args:
            delta: Tool displacement (m, world frame).
            tool: The tool position now, if the caller already read it this step (saves a
                query); None reads it.
        """
        tx, ty, tz = map(float, self.tool_state()[0] if tool is None else tool)
        gx, gy, gz = map(float, self.target)
        dx, dy, dz = map(float, delta)
        # Keep the command near the tool so a blocked arm does not wind up (on plain floats:
        # numpy's per-call cost is most of the time for 3-vectors).
        lead = _TARGET_LEAD_M
        target = self._clamp_to_workspace(
            tx + min(max(gx + dx - tx, -lead), lead),
            ty + min(max(gy + dy - ty, -lead), lead),
            tz + min(max(gz + dz - tz, -lead), lead),
        )
        self.target = np.array(target)
        arm = self._solve_ik(target)
        c = self.controller
        self.sim.position_control(
            self.body, self.arm_joints, arm, self._forces, c.position_gain, c.velocity_gain
        )

    def _clamp_to_workspace(self, x: float, y: float, z: float) -> Vec3:
        bx, by, bz = self._base
        rx, ry = x - bx, y - by
        horizontal = math.hypot(rx, ry)
        reach, inner = self.info.reach_m, INNER_RADIUS_M
        if horizontal > reach or horizontal < inner:
            scale = min(max(horizontal, inner), reach) / max(horizontal, 1e-9)
            rx *= scale
            ry *= scale
        return bx + rx, by + ry, min(max(z, self.workspace_min_z), bz + MAX_HEIGHT_ABOVE_BASE_M)

    def place_tool(self, target: Vec3) -> tuple[np.ndarray, list[float]]:
        """Set the arm joints (no dynamics) to the controller's IK solution for a tool target.

        For reach probes in a simulation of their own (`envs.robots.reach`): the solve starts
        from the joints as they are, like a control step, and is clipped to the joint limits
        the simulation holds the joints to (IK without null space ignores them: a KUKA's elbow
        stops at 120 degrees); `reset` restores the ready pose.

        Returns:
            The tool position the solution reaches (world frame), and the arm joint angles.
        """
        angles = [
            min(max(angle, low), high)
            for angle, (low, high) in zip(self._solve_ik(target), self._joint_limits, strict=True)
        ]
        return self.place_joints(angles), angles

    def place_joints(self, angles: list[float]) -> np.ndarray:
        """Set the arm joints to ``angles`` (no dynamics); returns the tool position reached."""
        for joint, angle in zip(self.arm_joints, angles, strict=True):
            self.sim.reset_joint(self.body, joint, angle)
        return self.tool_state()[0]

    @cached_property
    def _joint_limits(self) -> list[tuple[float, float]]:
        """Each arm joint's limits, as the simulation enforces them (none where they are bogus)."""
        limits = []
        for joint in self.arm_joints:
            low, high = self.sim.joint_info(self.body, joint)[8:10]
            limits.append((low, high) if low < high else (-math.inf, math.inf))
        return limits

    def _solve_ik(self, target: Vec3) -> list[float]:
        ox, oy, oz = self._link_offset
        solution = self.sim.inverse_kinematics(
            self.body,
            self.info.tool_link,
            (target[0] - ox, target[1] - oy, target[2] - oz),
            self._orientation,
            iterations=self.controller.ik_iterations,
            residual=self.controller.ik_residual_m,
            null_space=self._ik_options,
        )
        return [solution[slot] for slot in self._ik_slots]

    def _drive(self, arm_targets: list[float]) -> None:
        """Set every motor: the arm's to ``arm_targets``, the gripper's to their held targets."""
        c = self.controller
        self.sim.position_control(
            self.body, self.arm_joints, arm_targets, self._forces, c.position_gain, c.velocity_gain
        )
        if self._held_joints:
            self.sim.position_control(
                self.body, self._held_joints, self._held_targets, self._held_forces, 0.3, 1.0
            )


def _rotate(quaternion: Quat, vector: Vec3) -> Vec3:
    """Rotate a vector by a unit quaternion (x, y, z, w): v + w t + q x t with t = 2 q x v."""
    x, y, z, w = quaternion
    vx, vy, vz = vector
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    return (
        vx + w * tx + y * tz - z * ty,
        vy + w * ty + z * tx - x * tz,
        vz + w * tz + x * ty - y * tx,
    )
