"""`Testbed/Palletize-v0`: stack cartons from the infeed conveyor onto a pallet in a pattern.

Cartons (box primitives; size, mass, friction from the site's ``palletize`` section) enter the
belt one at a time, already turned to their slot's yaw, ride to a stop gate and wait there; the
robot takes each with its suction cup and sets it into its slot of the bundle's pattern (layers,
per-slot position and yaw on the ``pallet`` station; interlocking layers allowed). The suction
cup does not turn the carton: the action has no yaw, so placing is a translation problem and the
yaw error comes from the physics (a carton slipping on release, nudged by a neighbour). With a
finger gripper the jaws straddle the carton instead; the loader checks that the pattern leaves
them room (`envs.factory.finger_room`).

Observation (`Dict` of float32 `Box`es; positions in the robot base frame, yaws relative to the
robot base's, modulo pi):

=============  =====  ================================================================
field          shape  meaning
=============  =====  ================================================================
ee_pos         3      tool centre point position
ee_vel         3      tool centre point velocity
gripper        1      1 if the gripper is on (suction on, jaws closing), else 0
holding        1      1 if a carton is held (on the cup, or between the jaws), else 0
carton_pos     3      current carton's centre (sensor reading: noise, latency, dropout)
carton_vel     3      current carton's velocity (sensor reading)
carton_yaw     1      current carton's yaw (rad, in [-pi/2, pi/2))
carton_size    3      carton's full extents (x, y, z in its own frame)
slot_pos       3      centre of the current carton's slot (where its centre must go)
slot_yaw       1      the slot's yaw (rad, in [-pi/2, pi/2))
placed         1      cartons within tolerance of their slots now (0 .. 24)
cartons        1      cartons in the pattern (1 .. 24)
time           1      elapsed fraction of the episode's time limit
=============  =====  ================================================================

The current carton is the held one, else the first carton of the pattern that is on the belt
or was released out of tolerance; without one (all placed) its fields and the slot's are zeros.

Action: `Box(-1, 1, (4,))`, as every Testbed task: tool displacement (x, y, z) as a fraction of
the site controller's ``max_ee_speed_mps`` times the control period, and suction (on if > 0).

Reward: potential-based shaping with potential ``-distance(tool, current carton's top)``
before a grasp and ``1 - distance(carton, slot)`` while holding; +5 for a carton placed within
tolerance, -2 for a placed carton knocked out of it, -5 for a toppled or dropped carton, +10
when the stack is complete and at rest; -0.1 per safety violation.

Success: every carton within ``position_tolerance_m`` (horizontal and height) and
``yaw_tolerance_rad`` (yaw and tilt) of its slot, nothing on the cup, and every carton at rest
for ``settle_s``; the episode terminates then (``success_once`` = ``success_at_end``). A
toppled or dropped carton also terminates it. Outcome (``episode_metrics["outcome"]``):
``success``; ``toppled carton: 3 of 8 (layer 1) at step 412``; ``dropped carton: ...``; ``time
limit with 5/8 cartons placed``; ``step cap at step <n> with <k>/<n> cartons placed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.cells.cell import Cell
from envs.core import CellEnv
from envs.factory.schema import Part, SiteSpec
from envs.factory.task_sections import MAX_CARTONS, PalletizeSection
from envs.metrics import EpisodeMetrics
from envs.observation import BaseFrame
from envs.sensing import PartSensor
from envs.sim import Vec3
from envs.tasks.base import Task
from envs.tasks.palletize import CartonTracker, carton_part, wrap_half_turn

__all__ = ["OBSERVATION_FIELDS", "Palletize", "PalletizeEnv"]

OBSERVATION_FIELDS: dict[str, tuple[int, float, float]] = {
    "carton_pos": (3, -3.0, 3.0),
    "carton_vel": (3, -5.0, 5.0),
    "carton_yaw": (1, -math.pi / 2.0, math.pi / 2.0),
    "carton_size": (3, 0.0, 2.0),
    "slot_pos": (3, -3.0, 3.0),
    "slot_yaw": (1, -math.pi / 2.0, math.pi / 2.0),
    "placed": (1, 0.0, float(MAX_CARTONS)),
    "cartons": (1, 0.0, float(MAX_CARTONS)),
}
"""The task's own observation fields, name -> (size, low, high)."""

REWARD_PLACED, REWARD_DISPLACED, REWARD_LOST = 5.0, -2.0, -5.0
REWARD_COMPLETE, REWARD_VIOLATION = 10.0, -0.1
_REWARDS = {
    "placed": REWARD_PLACED,
    "displaced": REWARD_DISPLACED,
    "toppled": REWARD_LOST,
    "dropped": REWARD_LOST,
    "stack_complete": REWARD_COMPLETE,
}


class Palletize(Task):
    """The palletizing task of `Testbed/Palletize-v0` (module docstring).

    Args:
        site: The site's validated factory data.

    Raises:
        ValueError: If the section's infeed is not the site's (first) conveyor, or its pallet
            station is not a ``pallet``.
    """

    needs = ("conveyor", "pallet")
    observation_fields = OBSERVATION_FIELDS

    def __init__(self, site: SiteSpec) -> None:
        super().__init__(site)
        self.section = site.site.task_section(PalletizeSection)
        self.part: Part = carton_part(self.section)
        self.tracker: CartonTracker | None = None
        self._bodies: list[int] = []
        self._dt = 0.0
        self._potential_carton: int | None = None
        self._potential = 0.0

    def time_limit_s(self) -> float:
        """The section's ``time_limit_s``."""
        return self.section.time_limit_s

    def max_steps(self, control_dt: float) -> int:
        """Control steps in the time limit (the control period is kept for the rest timer)."""
        self._dt = control_dt
        return super().max_steps(control_dt)

    def build(self, cell: Cell) -> None:
        """One parked carton body per slot of the pattern, made once with the cell."""
        super().build(cell)
        section, site = self.section, self.site
        conveyors = site.stations_of("conveyor")
        if conveyors[0].station_id != section.infeed_station:
            raise ValueError(
                f"site {site.site_id!r}: palletize infeed_station {section.infeed_station!r}: "
                f"expected the site's first conveyor {conveyors[0].station_id!r}"
            )
        pallets = [s.station_id for s in site.stations_of("pallet")]
        if section.pallet_station not in pallets:
            raise ValueError(
                f"site {site.site_id!r}: palletize pallet_station {section.pallet_station!r}: "
                f"expected a pallet station of stations.csv ({pallets})"
            )
        self._bodies = [cell.create_part(self.part, i) for i in range(len(section.slots()))]

    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw every carton's entry offset and yaw error; the first carton enters the belt."""
        assert self.cell is not None
        count, section = len(self._bodies), self.section
        lateral = rng.uniform(-section.lateral_jitter_m, section.lateral_jitter_m, count)
        yaw = rng.uniform(-section.yaw_jitter_rad, section.yaw_jitter_rad, count)
        self.tracker = CartonTracker(self.cell, section, self._bodies, lateral, yaw)
        self.tracker.enter()
        self._potential_carton, self._potential = None, 0.0
        return {"cartons": count}

    def before_physics(self, now_s: float) -> list[str]:
        """The next carton enters the belt once the last one has left it."""
        return self._tracker.enter()

    def carried(self, held: int | None) -> tuple[Sequence[int], Vec3]:
        """Cartons on their way to the stop gate ride the belt."""
        assert self.cell is not None
        return self._tracker.riding(held), self.cell.belt_velocity()

    def after_physics(self, tool: np.ndarray) -> None:
        """Read every carton's pose and velocity."""
        self._tracker.observe()

    def positions(self) -> Mapping[int, np.ndarray]:
        """Positions of the cartons in the cell."""
        return self._tracker.positions()

    def graspable(self) -> dict[int, Part]:
        """Cartons on the belt, or released and not placed."""
        return self._tracker.graspable()

    def update(
        self,
        events: list[str],
        held: int | None,
        step: int,
        metrics: EpisodeMetrics,
        sim_time_s: float,
    ) -> list[str]:
        """Carton statuses; first placements count as the metrics' completed parts."""
        tracker = self._tracker
        mine = tracker.update(held, step, sim_time_s, self._dt)
        for event in events + mine:
            kind, _, index = event.partition(":")
            if kind == "placed" and tracker.cartons[int(index)].placed_at_s == sim_time_s:
                metrics.sorted_times_s.append(sim_time_s)
            elif kind == "grasp":
                metrics.grasps += 1
            elif kind == "grip_lost":
                metrics.grip_losses += 1
            elif kind in ("toppled", "dropped"):
                metrics.lost += 1
        return mine

    def reward(
        self, events: list[str], violations: list[str], tool: np.ndarray, held: int | None
    ) -> float:
        """Event rewards plus potential-based shaping toward the carton, then its slot."""
        reward = REWARD_VIOLATION * len(violations)
        for event in events:
            reward += _REWARDS.get(event.partition(":")[0], 0.0)
        current = self._tracker.current()
        if current is None:
            self._potential_carton = None
            return reward
        if current.status == "held":
            potential = 1.0 - math.dist(current.position, current.slot.position)
        else:
            top = current.position + np.array([0.0, 0.0, self.part.size_z / 2.0])
            potential = -math.dist(tool, top)
        if self._potential_carton == current.index:
            reward += potential - self._potential
        self._potential_carton, self._potential = current.index, potential
        return reward

    def terminated(self, held: int | None) -> bool:
        """The stack complete and at rest, or a carton toppled or dropped."""
        return self._tracker.succeeded or self._tracker.failed()

    def observe(
        self, sensor: PartSensor, rng: np.random.Generator, frame: BaseFrame
    ) -> Sequence[float]:
        """The current carton (sensor readings) and its slot, then the counts."""
        tracker = self._tracker
        counts = [float(tracker.placed()), float(len(tracker.cartons))]
        current = tracker.current()
        if current is None:
            return [0.0] * 14 + counts
        assert self.cell is not None
        pos, vel = sensor.read(current.position, current.velocity, rng)
        base_yaw = self.cell.robot_yaw
        return [
            *frame.point(pos),
            *frame.vector(vel),
            wrap_half_turn(current.yaw - base_yaw),
            *self.part.size,
            *frame.point(current.slot.position),
            wrap_half_turn(current.slot.yaw - base_yaw),
            *counts,
        ]

    def info(self, events: list[str], metrics: EpisodeMetrics) -> dict[str, Any]:
        """``events`` and ``cartons_placed``."""
        return {"events": events, "cartons_placed": self._tracker.placed()}

    def summary(
        self, metrics: EpisodeMetrics, sim_time_s: float, steps: int, time_limit_reached: bool
    ) -> dict[str, Any]:
        """`EpisodeMetrics.summary` (parts = cartons) with the palletizing figures and outcome.

        ``cycle_time_s`` is sim seconds per carton placed (first placements);
        ``pattern_error_mm`` the mean horizontal error of the released cartons from their slots.
        """
        tracker = self._tracker
        done = tracker.succeeded
        summary: dict[str, Any] = metrics.summary(len(tracker.cartons), done, done, sim_time_s)
        mean_error, max_error = tracker.pattern_error()
        statuses = [c.status for c in tracker.cartons]
        summary.update(
            {
                "cartons_total": len(tracker.cartons),
                "cartons_placed": tracker.placed(),
                "cartons_toppled": statuses.count("toppled"),
                "cartons_dropped": statuses.count("dropped"),
                "pattern_error_mm": 1000.0 * mean_error,
                "max_pattern_error_mm": 1000.0 * max_error,
                "cycle_time_per_carton_s": summary["cycle_time_s"],
                "outcome": tracker.outcome(steps, time_limit_reached),
            }
        )
        return summary

    def state(self) -> dict[str, Any]:
        """The cartons and the reward potential."""
        return {
            **self._tracker.state(),
            "palletize_potential": {"carton": self._potential_carton, "value": self._potential},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode (ValueError if another episode's)."""
        self._tracker.load_state(state)
        saved = state["palletize_potential"]
        self._potential_carton, self._potential = saved["carton"], saved["value"]

    @property
    def _tracker(self) -> CartonTracker:
        assert self.tracker is not None, "reset() first"
        return self.tracker


class PalletizeEnv(CellEnv):
    """A site's cell running the palletizing task.

    Takes `CellEnv`'s arguments (site and rendering options), the task being this one.
    """

    task: Palletize

    def __init__(
        self,
        site: str | SiteSpec = "kr-changwon",
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
        camera_obs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            Palletize, site, render_mode, render_size, renderer, camera, camera_obs=camera_obs
        )
