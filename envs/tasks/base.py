"""`Task`: what one task adds to the cell env every task shares (`envs.core.CellEnv`).

The env owns the simulator, the cell, the robot and its controller, the gripper, sensing, the
policy link, rendering, the substep loop, the shared observation fields, ``control_dt`` and
snapshots. A task supplies what differs (panda-gym's ``Task``): the station kinds its scene
needs, its episode set-up, its events before and after physics, its reward, its success rule,
its observation fields (``observation_fields``: by default the part tasks' ``part_pos`` ..
``bin_pos`` of `envs.observation`), its step info and its episode summary, plus ``state()`` /
``load_state()`` for what it keeps.

The env calls, per control step: `before_physics`, then (gripper and arm commands) `carried`,
(physics) `after_physics`, (suction with `positions` / `graspable`) `update`, `reward`,
`terminated`, `info`, `observe`; at an episode's end `summary`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from envs.cells.cell import Cell
from envs.factory.schema import Part, SiteSpec, StationKind
from envs.metrics import EpisodeMetrics
from envs.observation import PART_FIELDS, BaseFrame
from envs.sensing import PartSensor
from envs.sim import Vec3

NO_CARRY: tuple[tuple[int, ...], Vec3] = ((), (0.0, 0.0, 0.0))
"""`Task.carried` of a task whose parts nothing carries."""


class Task(ABC):
    """One task in a site's cell.

    Args:
        site: The site's validated factory data.
    """

    #: Station kinds the task's scene needs; the cell refuses a bundle that lacks one.
    needs: ClassVar[tuple[StationKind, ...]] = ()
    #: The task's observation fields, name -> (size, low, high), between the shared ``holding``
    #: and ``time`` (`envs.observation.Layout`); `observe` returns their values in this order.
    observation_fields: ClassVar[dict[str, tuple[int, float, float]]] = PART_FIELDS

    def __init__(self, site: SiteSpec) -> None:
        self.site = site
        self.cell: Cell | None = None

    @abstractmethod
    def time_limit_s(self) -> float:
        """Simulated time before an episode is truncated."""

    def max_steps(self, control_dt: float) -> int:
        """Control steps before an episode is truncated."""
        return int(round(self.time_limit_s() / control_dt))

    def build(self, cell: Cell) -> None:
        """Add the task's bodies to a freshly built cell (before it is saved as clean)."""
        self.cell = cell

    def clear(self) -> None:
        """Remove bodies the last episode made (the last made first), before the clean restore."""
        return None  # a task whose bodies are built once with the cell has none to remove

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Set up an episode in the restored cell; returns the task's reset info."""

    def before_physics(self, now_s: float) -> list[str]:
        """Events before the step's commands and physics (parts arriving)."""
        return []

    def carried(self, held: int | None) -> tuple[Sequence[int], Vec3]:
        """Bodies a conveyor carries this step, and its velocity."""
        return NO_CARRY

    @abstractmethod
    def after_physics(self, tool: np.ndarray) -> None:
        """Read what the task tracks from the world, once per step after physics (and at reset)."""

    @abstractmethod
    def positions(self) -> Mapping[int, np.ndarray]:
        """Body -> position of the parts in the cell, as `after_physics` read them."""

    @abstractmethod
    def graspable(self) -> dict[int, Part]:
        """Parts the suction cup may pick up now."""

    @abstractmethod
    def update(
        self,
        events: list[str],
        held: int | None,
        step: int,
        metrics: EpisodeMetrics,
        sim_time_s: float,
    ) -> list[str]:
        """Statuses after the step; returns the task's events.

        Args:
            events: The step's events so far (arrivals, the gripper's).
            held: The body on the suction cup, if any.
            step: The control step (index of the action just applied).
            metrics: The episode's metrics, for the task's counts.
            sim_time_s: Simulated time after the step.
        """

    @abstractmethod
    def reward(
        self, events: list[str], violations: list[str], tool: np.ndarray, held: int | None
    ) -> float:
        """The step's reward."""

    @abstractmethod
    def terminated(self, held: int | None) -> bool:
        """Whether the episode ended by the task's rule."""

    @abstractmethod
    def observe(
        self, sensor: PartSensor, rng: np.random.Generator, frame: BaseFrame
    ) -> Sequence[float]:
        """The values of `observation_fields`, in order (positions in the robot base frame)."""

    @abstractmethod
    def info(self, events: list[str], metrics: EpisodeMetrics) -> dict[str, Any]:
        """The task's entries of a step's info (besides violations, speed, force, energy)."""

    @abstractmethod
    def summary(
        self, metrics: EpisodeMetrics, sim_time_s: float, steps: int, time_limit_reached: bool
    ) -> dict[str, Any]:
        """The episode summary, with its ``outcome``."""

    def tool_speed(self, tool_vel: np.ndarray) -> float:
        """The tool speed the safety monitor and the info report (m/s)."""
        return math.hypot(*tool_vel)

    def state(self) -> dict[str, Any]:
        """What the task keeps, for snapshots (keys must not clash with the env's)."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode (ValueError if it is another episode's)."""
        return None  # a task that keeps no state has nothing to put back
