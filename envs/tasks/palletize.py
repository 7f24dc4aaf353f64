"""The palletizing task's cartons: where each must go, what happens to it, and the outcome.

Carton lifecycle: ``waiting`` (parked off-cell) -> ``infeed`` (riding the belt to the stop gate)
-> ``ready`` (held by the gate) -> ``held`` -> ``free`` (released, not within tolerance of its
slot) | ``placed`` (within tolerance) -> ... A placed carton knocked out of tolerance is ``free``
again. Final: ``toppled`` (at rest, tilted more than `TOPPLE_TILT_RAD`) and ``dropped`` (on the
floor); either ends the episode.

Carton ``i`` belongs in slot ``i`` of the bundle's pattern (layers bottom first, slots in file
order). Its error is the horizontal distance of its centre from the slot's, the height error
and the yaw error modulo pi (a box looks the same turned half a turn).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.cells.cell import Cell
from envs.factory.pallet import SlotPose, slot_poses
from envs.factory.schema import Part
from envs.factory.task_sections import PalletizeSection

TOPPLE_TILT_RAD = 0.35
"""A carton at rest tilted more than this (about 20 degrees) from upright has toppled."""
REST_SPEED_MPS = 0.02
REST_SPIN_RADPS = 0.2
"""Below both a carton counts as at rest."""
FLOOR_MARGIN_M = 0.02
"""A carton whose centre is this close to its resting height on the floor has dropped."""
FINAL = ("toppled", "dropped")


def carton_part(section: PalletizeSection) -> Part:
    """The carton as a catalog part (a box primitive), for the cell and the suction cup."""
    sx, sy, sz = section.carton.size_m
    return Part(
        part_id="carton",
        name="carton",
        shape="box",
        size_x=sx,
        size_y=sy,
        size_z=sz,
        mass_kg=section.carton.mass_kg,
        friction=section.carton.friction,
        color=section.carton.color,  # type: ignore[arg-type]  # the validator parses the hex
    )


def wrap_half_turn(angle: float) -> float:
    """An angle modulo pi, in [-pi/2, pi/2): a box's yaw."""
    return (angle + math.pi / 2.0) % math.pi - math.pi / 2.0


def yaw_and_tilt(quat: Sequence[float]) -> tuple[float, float]:
    """Yaw (rad) and tilt of the z axis from vertical (rad) of an (x, y, z, w) quaternion."""
    x, y, z, w = quat
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    up = min(1.0, max(-1.0, 1.0 - 2.0 * (x * x + y * y)))
    return yaw, math.acos(up)


@dataclass
class Carton:
    """One carton of an episode and what the task last read of it."""

    index: int
    body: int
    slot: SlotPose
    status: str = "waiting"
    grasped: bool = False
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spin: float = 0.0
    yaw: float = 0.0
    tilt: float = 0.0
    #: Sim time of its first placement (for cycle time); step of its final status.
    placed_at_s: float | None = None
    final_step: int | None = None

    def errors(self) -> tuple[float, float, float]:
        """Horizontal distance, height error and yaw error (modulo pi) from its slot."""
        offset = self.position - self.slot.position
        yaw_error = abs(wrap_half_turn(self.yaw - self.slot.yaw))
        return math.hypot(offset[0], offset[1]), abs(float(offset[2])), yaw_error

    def at_rest(self) -> bool:
        """Below `REST_SPEED_MPS` and `REST_SPIN_RADPS`."""
        return float(np.linalg.norm(self.velocity)) < REST_SPEED_MPS and self.spin < REST_SPIN_RADPS


class CartonTracker:
    """The cartons of one episode: entry on the belt, statuses, the stack's rest.

    Args:
        cell: The built cell (its conveyor is the infeed).
        section: The site's palletize section.
        bodies: One carton body per slot, in pattern order.
        lateral: Per carton, its offset from the belt's centre line at entry (m).
        yaw_jitter: Per carton, its yaw error at entry (rad).
    """

    def __init__(
        self,
        cell: Cell,
        section: PalletizeSection,
        bodies: Sequence[int],
        lateral: np.ndarray,
        yaw_jitter: np.ndarray,
    ) -> None:
        self.cell = cell
        self.section = section
        self.part = carton_part(section)
        slots = slot_poses(cell.site, section)
        pairs = enumerate(zip(bodies, slots, strict=True))
        self.cartons = [Carton(i, body, slot) for i, (body, slot) in pairs]
        self.lateral, self.yaw_jitter = lateral, yaw_jitter
        self.settled_s = 0.0
        self.succeeded = False

    # ------------------------------------------------------------------ per control step

    def enter(self) -> list[str]:
        """Put the next carton on the belt once none is on it; returns events."""
        if any(c.status in ("infeed", "ready") for c in self.cartons):
            return []
        waiting = [c for c in self.cartons if c.status == "waiting"]
        if not waiting:
            return []
        carton, cell, section = waiting[0], self.cell, self.section
        along = section.pick_along_m - section.infeed_length_m
        across = np.array([-cell.belt_direction[1], cell.belt_direction[0], 0.0])
        position = cell.belt_center + along * cell.belt_direction
        position += float(self.lateral[carton.index]) * across
        position[2] = cell.belt_top_z + self.part.size_z / 2.0 + 0.001
        yaw = carton.slot.yaw + float(self.yaw_jitter[carton.index])
        orientation = cell.sim.quat_from_euler((0.0, 0.0, yaw))
        cell.sim.reset_base(carton.body, tuple(position), orientation)  # type: ignore[arg-type]
        carton.status = "infeed"
        return [f"enter:{carton.index}"]

    def riding(self, held: int | None) -> list[int]:
        """Cartons the belt carries this step: those on their way to the stop gate."""
        return [c.body for c in self.cartons if c.status == "infeed" and c.body != held]

    def observe(self) -> None:
        """Read every carton's pose and velocity (once per step, after physics)."""
        sim = self.cell.sim
        for c in self.cartons:
            if c.status == "waiting":
                continue
            position, quat = sim.base_pose(c.body)
            velocity, spin = sim.base_velocity(c.body)
            c.position = np.array(position, dtype=np.float64)
            c.velocity = np.array(velocity, dtype=np.float64)
            c.spin = math.sqrt(spin[0] ** 2 + spin[1] ** 2 + spin[2] ** 2)
            c.yaw, c.tilt = yaw_and_tilt(quat)

    def update(self, held: int | None, step: int, sim_time_s: float, dt: float) -> list[str]:
        """Statuses from the poses `observe` read, and the stack's rest; returns events."""
        events: list[str] = []
        for c in self.cartons:
            if c.status in ("waiting", *FINAL):
                continue
            if c.body == held:
                if not c.grasped:
                    events.append(f"grasp:{c.index}")
                c.grasped, c.status = True, "held"
            elif c.status == "infeed":
                if self.cell.along_belt(c.position) >= self.section.pick_along_m:
                    c.status = "ready"
            elif c.status != "ready":
                events.extend(self._settle(c, step, sim_time_s))
        resting = held is None and all(c.status == "placed" and c.at_rest() for c in self.cartons)
        self.settled_s = self.settled_s + dt if resting else 0.0
        if not self.succeeded and resting and self.settled_s >= self.section.settle_s - 1e-9:
            self.succeeded = True
            events.append("stack_complete")
        return events

    def _settle(self, c: Carton, step: int, sim_time_s: float) -> list[str]:
        """A released carton: dropped, toppled, placed or free."""
        if c.position[2] < self.part.size_z / 2.0 + FLOOR_MARGIN_M:
            c.status, c.final_step = "dropped", step
            return [f"dropped:{c.index}"]
        if c.tilt > TOPPLE_TILT_RAD and c.at_rest():
            c.status, c.final_step = "toppled", step
            return [f"toppled:{c.index}"]
        distance, height, yaw = c.errors()
        tol = self.section.position_tolerance_m
        within = (
            distance <= tol and height <= tol and max(yaw, c.tilt) <= self.section.yaw_tolerance_rad
        )
        was = c.status
        c.status = "placed" if within else "free"
        if within and was != "placed":
            if c.placed_at_s is None:
                c.placed_at_s = sim_time_s
            return [f"placed:{c.index}"]
        if was == "placed" and not within:
            return [f"displaced:{c.index}"]
        return []

    # ------------------------------------------------------------------ queries

    def current(self) -> Carton | None:
        """The carton to work on: the held one, else the first not placed that is in the cell."""
        for c in self.cartons:
            if c.status == "held":
                return c
        for c in self.cartons:
            if c.status in ("infeed", "ready", "free"):
                return c
        return None

    def graspable(self) -> dict[int, Part]:
        """Cartons the cup may pick up: on the belt, or released and not placed."""
        return {c.body: self.part for c in self.cartons if c.status in ("infeed", "ready", "free")}

    def positions(self) -> dict[int, np.ndarray]:
        """Body -> position of the cartons in the cell, as `observe` last read them."""
        return {c.body: c.position for c in self.cartons if c.status != "waiting"}

    def placed(self) -> int:
        """Cartons within tolerance of their slots now."""
        return sum(c.status == "placed" for c in self.cartons)

    def failed(self) -> bool:
        """A carton toppled or dropped: the pattern cannot be finished."""
        return any(c.status in FINAL for c in self.cartons)

    def pattern_error(self) -> tuple[float, float]:
        """Mean and largest horizontal error (m) of the cartons released on the pallet so far.

        NaN without one.
        """
        errors = [c.errors()[0] for c in self.cartons if c.status in ("placed", "free")]
        if not errors:
            return math.nan, math.nan
        return float(np.mean(errors)), float(max(errors))

    def outcome(self, step: int, time_limit_reached: bool) -> str:
        """``success``, else the main cause (`envs.palletize` lists them)."""
        if self.succeeded:
            return "success"
        for status in FINAL:
            hit = [c for c in self.cartons if c.status == status]
            if hit:
                first = min(hit, key=lambda c: (c.final_step or 0, c.index))
                more = f" ({len(hit)} cartons {status})" if len(hit) > 1 else ""
                return (
                    f"{status} carton: {first.index + 1} of {len(self.cartons)} (layer "
                    f"{first.slot.layer + 1}) at step {first.final_step}{more}"
                )
        progress = f"with {self.placed()}/{len(self.cartons)} cartons placed"
        if self.placed() == len(self.cartons):
            progress += " (stack not yet at rest)"
        if time_limit_reached:
            return f"time limit {progress}"
        return f"step cap at step {step} {progress}"

    # ------------------------------------------------------------------ snapshots

    def state(self) -> dict[str, Any]:
        """Statuses (JSON ``cartons``), readings (``carton_readings``: n x 9), entry draws."""
        readings = [[*c.position, *c.velocity, c.spin, c.yaw, c.tilt] for c in self.cartons]
        return {
            "cartons": {
                "bodies": [c.body for c in self.cartons],
                "status": [c.status for c in self.cartons],
                "grasped": [c.grasped for c in self.cartons],
                "placed_at_s": [c.placed_at_s for c in self.cartons],
                "final_step": [c.final_step for c in self.cartons],
                "settled_s": self.settled_s,
                "succeeded": self.succeeded,
            },
            "carton_readings": np.array(readings, dtype=np.float64).reshape(-1, 9),
            "carton_entry": np.stack([self.lateral, self.yaw_jitter]),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode.

        Raises:
            ValueError: If the saved cartons' bodies or entry draws are not this episode's.
        """
        saved = state["cartons"]
        entry = np.asarray(state["carton_entry"], dtype=np.float64)
        if saved["bodies"] != [c.body for c in self.cartons] or not np.array_equal(
            entry, np.stack([self.lateral, self.yaw_jitter])
        ):
            raise ValueError(
                "the env's cartons differ from the saved ones; reset it with the episode's seed"
            )
        readings = np.asarray(state["carton_readings"], dtype=np.float64)
        for i, c in enumerate(self.cartons):
            c.status, c.grasped = saved["status"][i], saved["grasped"][i]
            c.placed_at_s, c.final_step = saved["placed_at_s"][i], saved["final_step"][i]
            row = readings[i]
            c.position, c.velocity = row[0:3].copy(), row[3:6].copy()
            c.spin, c.yaw, c.tilt = float(row[6]), float(row[7]), float(row[8])
        self.settled_s, self.succeeded = saved["settled_s"], saved["succeeded"]
