"""What the feasibility checks share: a site's cell in world coordinates, and the finding report.

`Layout` resolves the stations a task uses (robot base, belt, bins) to world geometry, converts
points to the robot base frame and asks the robot model's reach probe about them. `Report`
collects errors and warnings as `DataIssue`s in the loader's format: file, row (or key),
station, value and what would fix it.

The task's numbers the checks rely on are mirrored here from the code that applies them
(`envs.cells.cell`, `envs.tasks.conveyor_sort`); ``tests/envs/test_feasibility.py`` pins each
one against that code, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from envs.errors import DataIssue
from envs.factory.geometry import Box, Vec3, inside
from envs.factory.schema import SiteSpec, Station
from envs.robots.models import INNER_RADIUS_M, MAX_HEIGHT_ABOVE_BASE_M, ROBOT_MODELS, RobotModelInfo

if TYPE_CHECKING:  # pybullet is imported on the first reach query, not with the loader
    from envs.robots.reach import ReachProbe

# Mirrored from the cell and the task (pinned by tests/envs/test_feasibility.py).
DROP_HEIGHT_M = 0.06
"""`Cell.drop_point`: the drop point is this far above a bin's rim (the opening's centre)."""
IN_BIN_ABOVE_RIM_M = 0.02
"""`Cell.bin_containing`: a part's centre counts as in a bin up to this far above the rim."""
LOST_BELOW_BELT_M = 0.03
"""`ConveyorSortTask`: a free part whose centre is this far below the belt top, and in no
bin, is lost."""
BELT_ENTRY_M = 0.03
"""`Cell.place_on_belt`: a part enters this far downstream of the belt's upstream end."""
FIRST_ARRIVAL_S = 0.5
"""`envs.tasks.conveyor_sort.FIRST_ARRIVAL_S`: when the first part of an episode arrives."""
MIN_TOOL_ABOVE_FLOOR_M = 0.005
"""`Cell.min_tool_z`: the controller keeps the tool this far above the lowest bin floor or
belt top."""
BIN_WALL_M = 0.01
"""`Cell`: the wall and floor thickness of a bin."""

# The checks' own tolerances.
REACH_TOLERANCE_M = 0.01
"""A point is in reach when the controller's IK gets the tool this close to it."""
MARGINAL_REACH_M = 0.005
"""Reachable, but with an IK residual above this: a warning."""
FLOOR_TOLERANCE_M = 0.001
OVERLAP_TOLERANCE_M = 0.002
"""Stations may touch (a bin standing on a table); deeper interpenetration is an overlap."""
LEVEL_TOLERANCE_RAD = 0.001


def fmt(point: Vec3 | np.ndarray) -> str:
    """A point as ``(0.42, -0.32, 0.18)``."""
    return "(" + ", ".join(f"{float(v):.2f}" for v in point) + ")"


class Report:
    """Collects findings as `DataIssue`s; errors and warnings apart.

    Args:
        spec: The site the findings are about.
        rows: Station id -> its row in stations.csv (``row 3 (line 4)``); stations missing
            from it are named by their index in file order.
    """

    def __init__(self, spec: SiteSpec, rows: Mapping[str, str] | None = None) -> None:
        self._rows = {s.station_id: f"row {i + 1}" for i, s in enumerate(spec.stations)}
        self._rows.update(rows or {})
        self.errors: list[DataIssue] = []
        self.warnings: list[DataIssue] = []

    def station(
        self, station_id: str, value: str, expected: str, column: str = "", warn: bool = False
    ) -> None:
        """A finding about one row of stations.csv (and one of its columns, if given)."""
        where = self._rows.get(station_id, "")
        where += f", column {column} ({station_id})" if column else f", station {station_id}"
        self.add(DataIssue("stations.csv", where.lstrip(", "), value, expected), warn)

    def site(self, key: str, value: str, expected: str, warn: bool = False) -> None:
        """A finding about a key of site.yaml."""
        self.add(DataIssue("site.yaml", key, value, expected), warn)

    def add(self, issue: DataIssue, warn: bool = False) -> None:
        """Record a finding: an error, or a warning if ``warn``."""
        (self.warnings if warn else self.errors).append(issue)


@dataclass(frozen=True)
class Belt:
    """The conveyor parts arrive on, in world coordinates."""

    station: Station
    center: np.ndarray
    direction: np.ndarray
    half_length: float
    top_z: float
    speed: float

    def point(self, along: float, z: float) -> np.ndarray:
        """The point ``along`` metres downstream of the belt's centre, at height ``z``."""
        point = self.center + along * self.direction
        point[2] = z
        return point


@dataclass(frozen=True)
class BinSpot:
    """A bin in world coordinates and the point the task drops its parts from."""

    station: Station
    box: Box
    top_z: float
    drop: np.ndarray


class Layout:
    """A site's cell in world coordinates, as the task and the controller see it."""

    def __init__(self, spec: SiteSpec) -> None:
        self.spec = spec
        self.robot = spec.station(spec.site.robot.station_id)
        self.model: RobotModelInfo = ROBOT_MODELS[spec.site.robot.model]
        position, rpy = spec.world_pose(self.robot.station_id)
        self.base = np.asarray(position, dtype=np.float64)
        self.yaw = rpy[2]
        self.boxes = {
            s.station_id: Box.posed(*spec.world_pose(s.station_id), s.size)
            for s in spec.stations
            if s.kind in ("conveyor", "bin", "table", "fixture", "pallet")
        }
        self.belt = self._belt()
        self.bins = tuple(self._bin(s) for s in spec.bins)
        self.min_tool_z = min([b.box.bottom_z + BIN_WALL_M for b in self.bins] + [self.belt.top_z])
        self.min_tool_z += MIN_TOOL_ABOVE_FLOOR_M

    def _belt(self) -> Belt:
        conveyor = self.spec.conveyor
        position, rpy = self.spec.world_pose(conveyor.station_id)
        direction = np.array([math.cos(rpy[2]), math.sin(rpy[2]), 0.0])
        top = position[2] + conveyor.size_z / 2.0
        speed = float(conveyor.conveyor_speed_mps or 0.0)
        center = np.asarray(position, dtype=np.float64)
        return Belt(conveyor, center, direction, conveyor.size_x / 2.0, top, speed)

    def _bin(self, station: Station) -> BinSpot:
        box = self.boxes[station.station_id]
        top = float(box.center[2]) + station.size_z / 2.0
        drop = np.array([box.center[0], box.center[1], top + DROP_HEIGHT_M])
        return BinSpot(station, box, top, drop)

    @cached_property
    def footprint(self) -> Box:
        """The robot's base and first link as a box (`RobotModelInfo.footprint`)."""
        low, high = self.model.footprint
        x, y, z = (float(v) for v in self.base)
        return Box.spanning(low, high, (x, y, z), self.yaw)

    @cached_property
    def probe(self) -> ReachProbe:
        """The robot model's reach probe (built on first use, shared in the process)."""
        from envs.robots.reach import probe

        return probe(self.spec.site.robot.model)

    def to_base(self, point: np.ndarray) -> Vec3:
        """A world point in the robot base frame (translation, then yaw)."""
        dx, dy = point[0] - self.base[0], point[1] - self.base[1]
        cos, sin = math.cos(self.yaw), math.sin(self.yaw)
        return (cos * dx + sin * dy, -sin * dx + cos * dy, float(point[2] - self.base[2]))

    def radius(self, point: np.ndarray) -> float:
        """Horizontal distance of a point from the robot base axis."""
        return math.hypot(point[0] - self.base[0], point[1] - self.base[1])

    def out_of_bounds(self, point: np.ndarray) -> str | None:
        """Why the controller never commands the tool to this point, or None if it may."""
        radius, height = self.radius(point), float(point[2] - self.base[2])
        axis = f"{radius:.2f} m from the base axis"
        if radius > self.model.reach_m:
            return f"{axis}, beyond the controller's {self.model.reach_m:g} m"
        if radius < INNER_RADIUS_M:
            return f"{axis}, inside the controller's {INNER_RADIUS_M:g} m"
        if height > MAX_HEIGHT_ABOVE_BASE_M:
            limit = MAX_HEIGHT_ABOVE_BASE_M
            return f"{height:.2f} m above the base, over the controller's {limit:g} m"
        if point[2] < self.min_tool_z:
            return f"below the lowest tool height {self.min_tool_z:.3f} m"
        return None

    def residual(self, point: np.ndarray) -> float:
        """How far the controller's IK leaves the tool from a world point (m)."""
        return self.probe.residual(self.to_base(point))

    def follow(self, points: list[np.ndarray]) -> tuple[float, ...]:
        """How close the controller's IK follows the tool along world points, in order."""
        return self.probe.follow([self.to_base(point) for point in points])

    def zone_at(self, point: np.ndarray) -> str | None:
        """The name of the first keep-out zone holding the point, if any."""
        for zone in self.spec.site.safety.keep_out_zones:
            if inside(point, zone.min_xyz, zone.max_xyz):
                return zone.name
        return None
