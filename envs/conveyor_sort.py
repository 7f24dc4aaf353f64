"""`Testbed/ConveyorSort-v0`: sort parts arriving on a conveyor into bins by type.

Observation (`Dict` of float32 `Box`es; positions and velocities in the robot base frame, m and
m/s, so one policy runs on every robot and layout):

=============  =====  ================================================================
field          shape  meaning
=============  =====  ================================================================
ee_pos         3      tool centre point position
ee_vel         3      tool centre point velocity
gripper        1      1 if the grip is on (suction on, or finger jaws closing), else 0
holding        1      1 if a part is held (on the cup, or pinched by the jaws), else 0
part_pos       3      current part's centre (sensor reading: noise, latency, dropout)
part_vel       3      current part's velocity (sensor reading)
part_size      3      current part's full extents
part_type      4      one-hot of the bin the current part belongs in; zeros if no part
bin_pos        3      drop point above that bin; zeros if no part
time           1      elapsed fraction of the episode's time limit
=============  =====  ================================================================

The current part is the held one, else the earliest arrival not yet resolved.

Action: `Box(-1, 1, (4,))`: tool displacement (x, y, z) as a fraction of the site controller's
``max_ee_speed_mps`` times the control period, and grip (on if > 0). Actions are clipped to
the box and delayed by the site's policy-link latency.

Reward (documented, dense plus terms): potential-based shaping with potential
``-distance(tool, current part)`` before a grasp and ``1 - distance(part, drop point)`` while
holding; +5 for a part sorted into its bin, -3 for a wrong bin, -3 for a lost part, -0.1 for
each safety violation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs import observation as obs
from envs.core import CellEnv
from envs.factory.schema import Part, SiteSpec
from envs.factory.task_sections import ConveyorSortSection
from envs.metrics import EpisodeMetrics
from envs.observation import MAX_BINS, NO_PART, BaseFrame, part_type
from envs.sensing import PartSensor
from envs.sim import Vec3
from envs.tasks.base import Task
from envs.tasks.conveyor_sort import ConveyorSortTask, PartInstance, sample_schedule

__all__ = ["ConveyorSort", "ConveyorSortEnv", "observation_space"]
observation_space = obs.observation_space  # the shared observation (envs.observation)

REWARD_SORTED, REWARD_WRONG_BIN, REWARD_LOST, REWARD_VIOLATION = 5.0, -3.0, -3.0, -0.1
_REWARDS = {"sorted": REWARD_SORTED, "wrong_bin": REWARD_WRONG_BIN, "lost": REWARD_LOST}


class ConveyorSort(Task):
    """The conveyor-sort task of `Testbed/ConveyorSort-v0` (module docstring).

    Args:
        site: The site's validated factory data.

    Raises:
        ValueError: If the site has more bins than the observation's part type holds.
    """

    needs = ("conveyor", "bin")

    def __init__(self, site: SiteSpec) -> None:
        super().__init__(site)
        if len(site.bins) > MAX_BINS:
            raise ValueError(f"site {site.site_id!r} has more than {MAX_BINS} bins")
        self.tracker: ConveyorSortTask | None = None
        self._potential_part: int | None = None
        self._potential = 0.0

    def time_limit_s(self) -> float:
        """The site's time limit (site.yaml ``tasks:``, the ``conveyor-sort`` section)."""
        return self.site.site.task_section(ConveyorSortSection).time_limit_s

    def clear(self) -> None:
        """Remove the last episode's part bodies, the last made first."""
        assert self.cell is not None
        for part in reversed(self._tracker.parts):
            self.cell.sim.remove_body(part.body)

    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the episode's parts and arrival times from the production log."""
        assert self.cell is not None
        self.tracker = ConveyorSortTask(self.cell, sample_schedule(self.site, rng))
        self._potential_part, self._potential = None, 0.0
        return {}

    def before_physics(self, now_s: float) -> list[str]:
        """Parts whose arrival time has come go on the belt."""
        return self._tracker.arrive(now_s)

    def carried(self, held: int | None) -> tuple[Sequence[int], Vec3]:
        """Parts on the belt (not the held one) ride it. Statuses change between control steps."""
        assert self.cell is not None
        riders = [b for b in self._tracker.belt_bodies() if b != held]
        return riders, self.cell.belt_velocity()

    def after_physics(self, tool: np.ndarray) -> None:
        """Read every part's pose and velocity."""
        self._tracker.observe()

    def positions(self) -> Mapping[int, np.ndarray]:
        """Positions of the parts in the cell."""
        return self._tracker.positions()

    def graspable(self) -> dict[int, Part]:
        """Parts on the belt or lying free."""
        return self._tracker.graspable()

    def update(
        self,
        events: list[str],
        held: int | None,
        step: int,
        metrics: EpisodeMetrics,
        sim_time_s: float,
    ) -> list[str]:
        """Part statuses; counts sorts, wrong bins, losses, grasps, grip losses into metrics."""
        mine = self._tracker.update(held, step)
        for event in events + mine:
            kind = event.split(":", 1)[0]
            if kind == "sorted":
                metrics.sorted_times_s.append(sim_time_s)
            elif kind == "wrong_bin":
                metrics.wrong_bin += 1
            elif kind == "lost":
                metrics.lost += 1
            elif kind == "grasp":
                metrics.grasps += 1
            elif kind == "grip_lost":
                metrics.grip_losses += 1
        return mine

    def reward(
        self, events: list[str], violations: list[str], tool: np.ndarray, held: int | None
    ) -> float:
        """Event rewards plus potential-based shaping toward the current part, then its bin."""
        reward = REWARD_VIOLATION * len(violations)
        for event in events:
            reward += _REWARDS.get(event.split(":", 1)[0], 0.0)
        current = self._tracker.current()
        if current is None:
            self._potential_part = None
            return reward
        assert self.cell is not None
        if current.status == "held":
            potential = 1.0 - math.dist(current.position, self.cell.drop_point(current.bin_index))
        else:
            potential = -math.dist(tool, current.position)
        if self._potential_part == current.index:
            reward += potential - self._potential
        self._potential_part, self._potential = current.index, potential
        return reward

    def terminated(self, held: int | None) -> bool:
        """Every part resolved, none on the cup."""
        return self._tracker.done() and held is None

    def observe(
        self, sensor: PartSensor, rng: np.random.Generator, frame: BaseFrame
    ) -> Sequence[float]:
        """The current part's fields (sensor readings), or zeros without one."""
        current = self._tracker.current()
        if current is None:
            return NO_PART
        assert self.cell is not None
        pos, vel = sensor.read(current.position, current.velocity, rng)
        return [
            *frame.point(pos),
            *frame.vector(vel),
            *current.part.size,
            *part_type(current.bin_index),
            *frame.point(self.cell.drop_point(current.bin_index)),
        ]

    def info(self, events: list[str], metrics: EpisodeMetrics) -> dict[str, Any]:
        """``events`` and ``parts_sorted``."""
        return {"events": events, "parts_sorted": len(metrics.sorted_times_s)}

    def summary(
        self, metrics: EpisodeMetrics, sim_time_s: float, steps: int, time_limit_reached: bool
    ) -> dict[str, Any]:
        """`EpisodeMetrics.summary` and the outcome reason (module docstring)."""
        tracker = self._tracker
        summary: dict[str, Any] = metrics.summary(
            len(tracker.parts), tracker.success_once(), tracker.success_at_end(), sim_time_s
        )
        summary["outcome"] = tracker.outcome(steps, time_limit_reached)
        return summary

    def state(self) -> dict[str, Any]:
        """The part lifecycle and the reward potential."""
        return {
            **self._tracker.state(),
            "potential_part": self._potential_part,
            "potential": self._potential,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode (ValueError if another episode's)."""
        self._tracker.load_state(state)
        self._potential_part = state["potential_part"]
        self._potential = state["potential"]

    @property
    def parts(self) -> list[PartInstance]:
        """The parts of this episode."""
        return self._tracker.parts

    @property
    def _tracker(self) -> ConveyorSortTask:
        assert self.tracker is not None, "reset() first"
        return self.tracker


class ConveyorSortEnv(CellEnv):
    """A site's cell running the conveyor-sort task.

    Takes `CellEnv`'s arguments (site and rendering options), the task being this one.
    """

    task: ConveyorSort

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
            ConveyorSort, site, render_mode, render_size, renderer, camera, camera_obs=camera_obs
        )
