"""`Testbed/TouchPart-v0`: put the suction cup on the top face of a part resting on the belt.

The reach-and-touch sub-skill of conveyor sorting, small enough to learn with PPO in minutes
on a CPU. The line is stopped: one part, drawn from the site's production log, rests at a
random spot of the belt's pick window, and the tool must reach the centre of its top face. The
cell, robot, gripper, control rate, action scale, sensing, link latency and safety profile are
the site's own (built from its factory data), so a policy's home site still matters.

Observation and action: exactly those of `Testbed/ConveyorSort-v0` (the same named fields in
the robot base frame, see `envs.conveyor_sort`), so a policy moves between the two tasks and
across sites. ``part_pos``/``part_vel`` are sensor readings of the resting part; ``part_type``
and ``bin_pos`` name its bin.

Success: the tool centre comes within ``success_radius_m`` of the top-face centre, or suction
engages on the part (the cup sits on its face). The episode terminates then, so
``success_once`` and ``success_at_end`` agree; it is truncated after ``time_limit_s``.

Reward: ``-distance(tool, top-face centre)`` (m) per step, +1 on success, -0.1 per safety
violation.

Outcome (``episode_metrics["outcome"]``): ``success``, else ``time limit: <part_id> not touched
(closest <d> mm)``; the part id is parts.csv's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.cells.cell import Cell
from envs.core import CellEnv
from envs.factory.schema import Part, SiteSpec
from envs.factory.task_sections import TouchPartSection
from envs.metrics import EpisodeMetrics
from envs.observation import BaseFrame, part_type
from envs.sensing import PartSensor
from envs.tasks.base import Task

__all__ = ["TouchPart", "TouchPartEnv"]

REWARD_TOUCH, REWARD_VIOLATION = 1.0, -0.1
PICK_WINDOW_M = (-0.2, 0.3)  # along the belt from its centre: where every robot reaches
LATERAL_M = 0.07  # off the belt's centre line, either side


class TouchPart(Task):
    """The touch-part task of `Testbed/TouchPart-v0` (module docstring).

    Args:
        site: The site's validated factory data.
        time_limit_s: Simulated time before the episode is truncated.
        success_radius_m: Distance from the top-face centre that counts as touching.
    """

    needs = ("conveyor", "bin")

    def __init__(self, site: SiteSpec, time_limit_s: float, success_radius_m: float) -> None:
        super().__init__(site)
        self._time_limit_s = time_limit_s
        self.success_radius_m = success_radius_m
        shares = site.arrival_process.part_shares
        self._part_ids = sorted(shares)
        weights = np.array([shares[p] for p in self._part_ids], dtype=np.float64)
        self._part_probs = weights / weights.sum()
        self._bodies: dict[str, int] = {}
        self.distance_m = math.inf
        self.min_distance_m = math.inf
        self.touched = False
        self.touched_at_s: float | None = None

    def time_limit_s(self) -> float:
        """The ``time_limit_s`` the env was made with."""
        return self._time_limit_s

    def max_steps(self, control_dt: float) -> int:
        """At least one step."""
        return max(1, super().max_steps(control_dt))

    def build(self, cell: Cell) -> None:
        """One parked body per catalog part, made once with the cell."""
        super().build(cell)
        self._bodies = {
            part_id: cell.create_part(self.site.part(part_id), slot)
            for slot, part_id in enumerate(self._part_ids)
        }

    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the part from the production log's shares and put it in the pick window."""
        self.part_id = self._part_ids[int(rng.choice(len(self._part_ids), p=self._part_probs))]
        self.part: Part = self.site.part(self.part_id)
        self.part_body = self._bodies[self.part_id]
        self._bin_index = self.site.bin_index_for(self.part_id)
        self._place_part(rng)
        self.touched, self.touched_at_s = False, None
        self.min_distance_m = math.inf
        return {"part_id": self.part_id}

    def _place_part(self, rng: np.random.Generator) -> None:
        """Put the part at a random spot of the belt's pick window, aligned with the belt."""
        cell = self.cell
        assert cell is not None
        along = rng.uniform(*PICK_WINDOW_M)
        lateral = rng.uniform(-LATERAL_M, LATERAL_M)
        across = np.array([-cell.belt_direction[1], cell.belt_direction[0], 0.0])
        position = cell.belt_center + along * cell.belt_direction + lateral * across
        position[2] = cell.belt_top_z + self.part.size_z / 2.0 + 0.001
        orientation = cell.sim.quat_from_euler((0.0, 0.0, cell.belt_yaw))
        cell.sim.reset_base(self.part_body, tuple(position), orientation)  # type: ignore[arg-type]

    def after_physics(self, tool: np.ndarray) -> None:
        """Read the part's pose; the distance from the tool to its top-face centre."""
        assert self.cell is not None
        sim = self.cell.sim
        position, _ = sim.base_pose(self.part_body)
        velocity, _ = sim.base_velocity(self.part_body)
        self._part_pos = np.asarray(position, dtype=np.float64)
        self._part_vel = np.asarray(velocity, dtype=np.float64)
        self.touch_point = self._part_pos + np.array([0.0, 0.0, self.part.size_z / 2.0])
        self.distance_m = float(np.linalg.norm(tool - self.touch_point))
        self.min_distance_m = min(self.min_distance_m, self.distance_m)

    def positions(self) -> Mapping[int, np.ndarray]:
        """The part's position."""
        return {self.part_body: self._part_pos}

    def graspable(self) -> dict[int, Part]:
        """The part."""
        return {self.part_body: self.part}

    def update(
        self,
        events: list[str],
        held: int | None,
        step: int,
        metrics: EpisodeMetrics,
        sim_time_s: float,
    ) -> list[str]:
        """Touched: within the success radius, or suction engaged on the part."""
        self.touched = self.distance_m <= self.success_radius_m or held is not None
        if self.touched:
            self.touched_at_s = sim_time_s
        return []

    def reward(
        self, events: list[str], violations: list[str], tool: np.ndarray, held: int | None
    ) -> float:
        """``-distance`` (m), +1 on success, -0.1 per safety violation."""
        return -self.distance_m + REWARD_TOUCH * self.touched + REWARD_VIOLATION * len(violations)

    def terminated(self, held: int | None) -> bool:
        """A touch ends the episode."""
        return self.touched

    def tool_speed(self, tool_vel: np.ndarray) -> float:
        """``np.linalg.norm``, as this task always computed it (replays stay bit for bit)."""
        return float(np.linalg.norm(tool_vel))

    def observe(
        self, sensor: PartSensor, rng: np.random.Generator, frame: BaseFrame
    ) -> Sequence[float]:
        """The resting part's fields (sensor readings) and its bin."""
        assert self.cell is not None
        pos, vel = sensor.read(self._part_pos, self._part_vel, rng)
        return [
            *frame.point(pos),
            *frame.vector(vel),
            *self.part.size,
            *part_type(self._bin_index),
            *frame.point(self.cell.drop_point(self._bin_index)),
        ]

    def info(self, events: list[str], metrics: EpisodeMetrics) -> dict[str, Any]:
        """``distance_m``."""
        return {"distance_m": self.distance_m}

    def summary(
        self, metrics: EpisodeMetrics, sim_time_s: float, steps: int, time_limit_reached: bool
    ) -> dict[str, Any]:
        """`EpisodeMetrics.summary` with the distances and the outcome."""
        touched = self.touched
        summary: dict[str, Any] = metrics.summary(1, touched, touched, sim_time_s)
        summary.update(
            {
                "parts_touched": int(touched),
                "time_to_touch_s": self.touched_at_s if self.touched_at_s is not None else math.nan,
                "final_distance_m": self.distance_m,
                "min_distance_m": self.min_distance_m,
                "outcome": self._outcome(steps, time_limit_reached),
            }
        )
        return summary

    def _outcome(self, steps: int, time_limit_reached: bool) -> str:
        """``success``, or why not: the only way to fail is not to touch the part in time.

        ``time limit: KR-CAP-300 not touched (closest 34 mm)``; for an episode its caller
        stopped early, ``step cap at step 40: ...``.
        """
        if self.touched:
            return "success"
        limit = "time limit" if time_limit_reached else f"step cap at step {steps}"
        closest = f"closest {1000.0 * self.min_distance_m:.0f} mm"
        return f"{limit}: {self.part_id} not touched ({closest})"

    def state(self) -> dict[str, Any]:
        """The part, the touch and the distances (``touch``), its pose (``touch_part_pose``)."""
        return {
            "touch": {
                "part_id": self.part_id,
                "touched": self.touched,
                "touched_at_s": self.touched_at_s,
                "distance_m": self.distance_m,
                "min_distance_m": self.min_distance_m,
            },
            "touch_part_pose": np.array([self._part_pos, self._part_vel], dtype=np.float64),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode (ValueError if another part was drawn)."""
        saved = state["touch"]
        if saved["part_id"] != self.part_id:
            raise ValueError(
                f"the env's part {self.part_id} differs from the saved {saved['part_id']}; "
                "reset it with the episode's seed first"
            )
        self.touched, self.touched_at_s = saved["touched"], saved["touched_at_s"]
        self.distance_m, self.min_distance_m = saved["distance_m"], saved["min_distance_m"]
        pose = np.asarray(state["touch_part_pose"], dtype=np.float64)
        self._part_pos, self._part_vel = pose[0].copy(), pose[1].copy()
        self.touch_point = self._part_pos + np.array([0.0, 0.0, self.part.size_z / 2.0])


class TouchPartEnv(CellEnv):
    """A site's cell running the touch-part task.

    Args:
        time_limit_s: Simulated time before the episode is truncated; None takes the site's
            ``touch-part`` section of ``tasks:`` (default 3 s).
        success_radius_m: Distance from the top-face centre that counts as touching; None
            takes the site's section (default 0.02 m).

    ``site`` and the rendering options are `CellEnv`'s (the same as `Testbed/ConveyorSort-v0`,
    so replay can film either task).

    Raises:
        ValueError: If `time_limit_s` or `success_radius_m` is not positive.
    """

    task: TouchPart

    def __init__(
        self,
        site: str | SiteSpec = "kr-changwon",
        time_limit_s: float | None = None,
        success_radius_m: float | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
        camera_obs: Mapping[str, Any] | None = None,
    ) -> None:
        for name, value in (("time_limit_s", time_limit_s), ("success_radius_m", success_radius_m)):
            if value is not None and not value > 0:
                raise ValueError(f"TouchPartEnv: {name}: expected > 0, got {value}")

        def make_task(spec: SiteSpec) -> TouchPart:
            section = spec.site.task_section(TouchPartSection)
            return TouchPart(
                spec,
                section.time_limit_s if time_limit_s is None else time_limit_s,
                section.success_radius_m if success_radius_m is None else success_radius_m,
            )

        super().__init__(
            make_task, site, render_mode, render_size, renderer, camera, camera_obs=camera_obs
        )

    @property
    def part_id(self) -> str:
        """The episode's part (parts.csv id)."""
        return self.task.part_id

    @property
    def part_body(self) -> int:
        """The episode's part body."""
        return self.task.part_body

    @property
    def success_radius_m(self) -> float:
        """Distance from the top-face centre that counts as touching."""
        return self.task.success_radius_m
