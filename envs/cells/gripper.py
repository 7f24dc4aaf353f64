"""The gripper seam: what `envs.core.CellEnv` asks of any gripper, and the one factory.

A site's ``robot.gripper.kind`` picks the implementation: ``suction``
(`envs.cells.suction.SuctionGripper`, a weld to a part's top face) or ``fingers``
(`envs.cells.fingers.FingerGripper`, the robot model's own parallel jaws holding by friction).
Grasp physics is one of the things that differs between sites.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from envs.cells.cell import Cell
from envs.factory.schema import GripperSpec, Part
from envs.sim import Sim

ENGAGED_EVENTS = ("suction_engaged", "fingers_engaged")
"""The events a gripper's grasp adds to a step (one per kind)."""


class Gripper(Protocol):
    """A gripper's per-step interface (the env calls these in this order each step).

    Attributes:
        on: The last grip command (suction on, jaws closing).
        held: The body the gripper holds, or None.
        engaged_event: The event a successful grasp adds to the step's events.
    """

    on: bool
    held: int | None
    engaged_event: str

    def reset(self) -> None:
        """Start an episode: grip off, nothing held (after the arm's reset)."""

    def command(self, on: bool) -> str | None:
        """Switch the grip; returns ``"release"`` if a held part was let go."""

    def check_hold(
        self, tool: np.ndarray, positions: Mapping[int, np.ndarray] | None = None
    ) -> bool:
        """After physics: False (and nothing held) if the held part was lost this step."""

    def try_grasp(
        self,
        candidates: dict[int, Part],
        tool: np.ndarray,
        positions: Mapping[int, np.ndarray] | None = None,
    ) -> int | None:
        """After physics: the body grasped this step, if any."""

    def state(self) -> dict[str, Any]:
        """The gripper's state for env snapshots (keys ``gripper``, ``hold_offset``)."""

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` (before the simulator's state is restored)."""


def make_gripper(sim: Sim, cell: Cell, spec: GripperSpec) -> Gripper:
    """The site's gripper on the cell's arm; built once per world (it may add constraints)."""
    if spec.kind == "fingers":
        from envs.cells.fingers import FingerGripper
        from envs.factory.finger_room import across_yaw

        return FingerGripper(sim, cell.arm, spec, across_yaw=across_yaw(cell.site))
    from envs.cells.suction import SuctionGripper

    return SuctionGripper(sim, cell.arm, spec)
