"""A suction cup: a weld between the tool and a part while suction is on and the cup touches it.

The grip engages when the tool centre is within the site's capture distance of a part's top
face (and over it), and is limited to the gripper's maximum force: when the arm accelerates a
heavy part harder than that, the part lags behind the cup and the grip is lost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.factory.schema import GripperSpec, Part
from envs.robots.arm import CartesianArm
from envs.sim import Attachment, Sim

_TEAR_OFF_M = 0.03  # a part this far from where the cup holds it has been torn off


class SuctionGripper:
    """Suction gripper state machine on a `CartesianArm` (an `envs.cells.gripper.Gripper`)."""

    engaged_event = "suction_engaged"

    def __init__(self, sim: Sim, arm: CartesianArm, spec: GripperSpec) -> None:
        self.sim = sim
        self.arm = arm
        self.spec = spec
        self.on = False
        self.held: int | None = None
        self._constraint: int | None = None
        self._hold_offset = np.zeros(3)

    def reset(self) -> None:
        """Suction off, nothing held (a weld still there is removed)."""
        self._drop()
        self.on = False
        self._hold_offset = np.zeros(3)

    def command(self, on: bool) -> str | None:
        """Switch suction; returns ``"release"`` if a held part was let go."""
        self.on = on
        if not on and self.held is not None:
            self._drop()
            return "release"
        return None

    def try_grasp(
        self,
        candidates: dict[int, Part],
        tool: np.ndarray,
        positions: Mapping[int, np.ndarray] | None = None,
    ) -> int | None:
        """Engage on the first candidate part under the cup; returns its body id.

        Args:
            candidates: Body -> part of the parts the cup may pick up.
            tool: Tool centre point (world).
            positions: Body -> position of the candidates if the caller read them this step
                (saves a query each); None asks the engine.
        """
        if not self.on or self.held is not None:
            return None
        for body, part in candidates.items():
            position = positions[body] if positions is not None else self.sim.base_pose(body)[0]
            top = position[2] + part.size_z / 2.0
            horizontal = math.hypot(tool[0] - position[0], tool[1] - position[1])
            reach = 0.5 * min(part.size_x, part.size_y)
            if horizontal <= reach and -0.005 <= tool[2] - top <= self.spec.capture_distance_m:
                self._constraint = self.sim.attach(
                    self.arm.body, self.arm.info.tool_link, body, self.spec.max_force_n
                )
                self.held = body
                self._hold_offset = np.asarray(position) - tool
                return body
        return None

    def check_hold(
        self, tool: np.ndarray, positions: Mapping[int, np.ndarray] | None = None
    ) -> bool:
        """Whether the held part is still on the cup; drops it (returns False) if torn off.

        Args:
            tool: Tool centre point (world).
            positions: Body -> position of the parts, if the caller read them this step;
                None asks the engine.
        """
        if self.held is None:
            return True
        held = self.held
        position = positions[held] if positions is not None else self.sim.base_pose(held)[0]
        if math.dist(position, tool + self._hold_offset) > _TEAR_OFF_M:
            self._drop()
            return False
        return True

    def state(self) -> dict[str, Any]:
        """Suction, the held body and the weld's exact frames, for env snapshots.

        ``gripper``: ``{"on", "held", "attachment"}`` (JSON; the attachment as `Attachment`'s
        fields, None when nothing is held); ``hold_offset``: part minus tool position when the
        weld was made (array).
        """
        attachment = None
        if self._constraint is not None:
            attachment = dataclasses.asdict(self.sim.attachment(self._constraint))
        return {
            "gripper": {"on": self.on, "held": self.held, "attachment": attachment},
            "hold_offset": np.array(self._hold_offset, dtype=np.float64),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state`: drops any weld, then remakes the saved one with its frames.

        Constraints are not part of the simulator's saved state: call this before restoring
        that, so the world restored holds the weld as it was.
        """
        self._drop()
        saved = state["gripper"]
        weld = saved["attachment"]
        if weld is not None:
            fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in weld.items()
            }
            self._constraint = self.sim.attach_exact(Attachment(**fields))
        self.on = bool(saved["on"])
        self.held = saved["held"]
        self._hold_offset = np.array(state["hold_offset"], dtype=np.float64)

    def _drop(self) -> None:
        if self._constraint is not None:
            self.sim.detach(self._constraint)
        self._constraint = None
        self.held = None
