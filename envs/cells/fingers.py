"""Parallel-jaw fingers: the robot model's own gripper holding a part by friction.

The jaws are driven by position motors whose force limit is the site's grip force (torque =
force x lever for revolute jaws); closing targets lie past the point where the pads meet, so a
part between them is squeezed with that force. Settings the PyBullet probe pinned (DESIGN.md,
simulation notes) are the bundle defaults: pads with friction >= 1.0, >= 20 N (40 N), 50 solver
iterations, the tool turned so the jaws close across the belt (a part's narrow side: parts ride
the belt with their x side along it); the jaws are geared to stay mirrored (the Panda's
fingers drift off centre without it, bullet3#2101). No weld is made: whether the part stays is
up to contact and friction, so a part can slip out when the arm moves fast (bullet3#2607),
which the gripper reports.

PyBullet touches a pad at a few points, not over a patch, so nothing resists a part turning
about the jaw axis: a part held off its centre of mass swings out while the arm carries it
(an xArm carrying a 0.45 kg battery pack lost it in 4 of 10 episodes). The pads get torsional
(spinning) friction `_SPIN` as a stand-in for the patch; with it, 1 of 10.

``held``: the part touches a pad of each jaw while the jaws are closed, and keeps following the
tool (within `_SLIP_M` of where it was gripped). The grip is lost when either stops holding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.factory.schema import GripperSpec, Part
from envs.robots.arm import CartesianArm
from envs.sim import Sim

_SLIP_M = 0.03  # a part this far from where the jaws gripped it has slipped out (as suction)
_GEAR_FORCE_N = 50.0  # pybullet's own Panda grasp example
_SPIN = 0.2  # pads' spinning friction (m: torque per newton of squeeze); module docstring
_SIDEWAYS = 0.5  # |z| of a squeezing contact's normal at most this (a side face, not the top)
_LOST_AFTER = 2  # control steps without both jaws touching before the grip counts as lost


class FingerGripper:
    """Finger gripper state machine on a `CartesianArm` (satisfies `envs.cells.gripper.Gripper`).

    Args:
        sim: The simulation.
        arm: The arm whose model's fingers grip.
        spec: The site's gripper settings (``grip_force_n``, ``finger_friction``,
            ``opening_m``).
        across_yaw: World yaw of the direction parts are aligned with (the belt's): the
            jaws close across it.

    Raises:
        ValueError: If ``opening_m`` is wider than the model's fingers open.
    """

    engaged_event = "fingers_engaged"

    def __init__(
        self, sim: Sim, arm: CartesianArm, spec: GripperSpec, across_yaw: float = 0.0
    ) -> None:
        self.sim = sim
        self.arm = arm
        self.spec = spec
        info = self.info = arm.info.fingers
        opening = info.max_opening_m if spec.opening_m is None else spec.opening_m
        if opening > info.max_opening_m + 1e-9:
            raise ValueError(
                f"robot.gripper.opening_m: expected at most {info.max_opening_m} m for the "
                f"{arm.info.file} fingers (got {opening})"
            )
        share = opening / info.max_opening_m
        self._open = [c + share * (o - c) for o, c in zip(info.open, info.closed, strict=True)]
        self._closed = list(info.closed)
        self._forces = [spec.grip_force_n * (lever or 1.0) for lever in info.lever_m]
        self._left, self._right = (frozenset(links) for links in info.pads)
        for link in (*info.pads[0], *info.pads[1]):
            sim.set_dynamics(
                arm.body,
                link,
                lateralFriction=spec.finger_friction,
                spinningFriction=_SPIN,
                frictionAnchor=1,
            )
        if info.gear is not None:
            sim.gear(arm.body, info.gear[0], info.gear[1], info.gear[2], _GEAR_FORCE_N)
        arm.set_tool(_tool_yaw(across_yaw + math.pi / 2.0 - info.jaw_yaw), info.tool_offset)
        self.on = False
        self.held: int | None = None
        self._hold_offset = np.zeros(3)
        self._missed = 0

    def reset(self) -> None:
        """Open the jaws (joints set, motors driven) with nothing held; after the arm's reset."""
        for joint, position in zip(self.info.joints, self._open, strict=True):
            self.sim.reset_joint(self.arm.body, joint, position)
        self.on = False
        self.held = None
        self._hold_offset = np.zeros(3)
        self._missed = 0
        self._drive()

    def command(self, on: bool) -> str | None:
        """Close (``on``) or open the jaws; returns ``"release"`` if a held part was let go."""
        if on != self.on:
            self.on = on
            self._drive()
        if not on and self.held is not None:
            self.held = None
            return "release"
        return None

    def try_grasp(
        self,
        candidates: dict[int, Part],
        tool: np.ndarray,
        positions: Mapping[int, np.ndarray] | None = None,
    ) -> int | None:
        """The first candidate that touches both jaws while they close; returns its body.

        Args:
            candidates: Body -> part of the parts the jaws may pick up.
            tool: Tool centre point (world).
            positions: Body -> position of the candidates if the caller read them this step;
                None asks the engine.
        """
        if not self.on or self.held is not None:
            return None
        for body in candidates:
            if self._pinched(body):
                position = positions[body] if positions is not None else self.sim.base_pose(body)[0]
                self.held = body
                self._hold_offset = np.asarray(position, dtype=np.float64) - tool
                self._missed = 0
                return body
        return None

    def check_hold(
        self, tool: np.ndarray, positions: Mapping[int, np.ndarray] | None = None
    ) -> bool:
        """Whether the held part is still gripped; False (nothing held) if it slipped out.

        Slipped: it moved `_SLIP_M` from where it was gripped (relative to the tool), or no
        longer touched both jaws for `_LOST_AFTER` steps in a row (contacts flicker a step).
        """
        if self.held is None:
            return True
        held = self.held
        position = positions[held] if positions is not None else self.sim.base_pose(held)[0]
        self._missed = 0 if self._pinched(held) else self._missed + 1
        moved = math.dist(position, tool + self._hold_offset) > _SLIP_M
        if moved or self._missed >= _LOST_AFTER:
            self.held = None
            self._missed = 0
            return False
        return True

    def state(self) -> dict[str, Any]:
        """The command, the held body and its grip, for env snapshots.

        ``gripper``: ``{"kind", "on", "held", "missed"}`` (JSON); ``hold_offset``: part minus
        tool position when the grip was made (array).
        """
        return {
            "gripper": {
                "kind": "fingers",
                "on": self.on,
                "held": self.held,
                "missed": self._missed,
            },
            "hold_offset": np.array(self._hold_offset, dtype=np.float64),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` and drive the jaw motors to match it.

        Motor targets are not part of the simulator's saved state; the joints are.

        Raises:
            ValueError: If the state is another gripper kind's.
        """
        saved = state["gripper"]
        if saved.get("kind") != "fingers":
            raise ValueError("snapshot: the gripper state is not a finger gripper's")
        self.on = bool(saved["on"])
        self.held = saved["held"]
        self._missed = int(saved["missed"])
        self._hold_offset = np.array(state["hold_offset"], dtype=np.float64)
        self._drive()

    def _drive(self) -> None:
        targets = self._closed if self.on else self._open
        self.sim.position_control(self.arm.body, self.info.joints, targets, self._forces, 0.3, 1.0)

    def _pinched(self, body: int) -> bool:
        """Whether ``body`` is squeezed between the jaws: a pad of each pushes on it sideways.

        Closed fingers pressing on a part's top face touch it too; their contact normals
        point up, not across, and do not count.
        """
        left = right = False
        for point in self.sim.contacts(self.arm.body, body):
            if point[9] <= 0.0 or abs(point[7][2]) > _SIDEWAYS:
                continue
            link = point[3]
            left = left or link in self._left
            right = right or link in self._right
            if left and right:
                return True
        return False


def _tool_yaw(yaw: float) -> float:
    """``yaw`` folded into [-pi/2, pi/2): jaws that close along a line work either way round.

    A quarter turn goes clockwise: the KUKA's last joint (rest -pi/2, limit +-3.05) reaches
    only that one.
    """
    folded = math.remainder(yaw, math.pi)
    return -math.pi / 2.0 if math.isclose(folded, math.pi / 2.0) else folded
