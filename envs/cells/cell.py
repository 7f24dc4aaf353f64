"""The work cell: the PyBullet scene a site's factory data describes.

`Cell` owns scene description only (floor, conveyor, bins, tables and fixtures, robot, part
bodies) and the geometry queries the task needs (is this part on the belt, in which bin). Every
station kind but the robot is optional: the cell builds the stations the site has, and a task
names the kinds it needs (`Cell.check_stations`: a clear error naming a missing kind); fixture
stations are built only for a task that names ``fixture``. Step logic lives in the task and the
env.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from envs.cells import framing
from envs.errors import MissingStationError
from envs.factory.schema import Part, SiteSpec, Station, StationKind
from envs.robots.arm import CartesianArm
from envs.sim import Camera, Shapes, Sim, Vec3

_CONVEYOR_COLOR = (0.25, 0.25, 0.28, 1.0)
_BIN_COLOR = (0.35, 0.55, 0.75, 1.0)
_TABLE_COLOR = (0.55, 0.45, 0.35, 1.0)
_PALLET_COLOR = (0.76, 0.62, 0.42, 1.0)
_BIN_WALL_M = 0.01
_PARK_X_M = -4.0  # parts waiting to arrive rest on the floor far outside the cell


@dataclass(frozen=True)
class BinGeometry:
    """A bin's pose and interior in world coordinates."""

    station_id: str
    center: np.ndarray
    yaw: float
    inner_half: tuple[float, float]
    top_z: float
    floor_z: float


class Cell:
    """Builds a site's scene into a `Sim` and answers geometry questions about it.

    Args:
        sim: The simulation to build into (freshly reset).
        site: The validated factory data.
        needs: The station kinds the task needs (checked; ``fixture`` builds the fixtures);
            None builds every station.
    """

    def __init__(
        self, sim: Sim, site: SiteSpec, needs: Collection[StationKind] | None = None
    ) -> None:
        if needs is not None:
            Cell.check_stations(site, needs)
        self.sim = sim
        self.site = site
        self._part_shapes: dict[str, Shapes] = {}
        self.floor = sim.load_urdf("plane.urdf", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        conveyors = site.stations_of("conveyor")
        self.conveyor_station = conveyors[0] if conveyors else None
        self.conveyor = -1
        if self.conveyor_station is not None:
            self._build_conveyor(self.conveyor_station)
        self.bins = tuple(self._build_bin(station) for station in site.bins)
        # Fixtures are task equipment (a hole fixture, a peg nest): only a task that needs them
        # gets them, so a task's cell stays as it was when a site adds another task's fixtures.
        built = ("table", "fixture") if needs is None or "fixture" in needs else ("table",)
        for station in site.stations:
            if station.kind in built:
                self._build_box_station(station, _TABLE_COLOR)
        # Pallets likewise: only a palletizing task's cell has them (built after the rest).
        pallets = site.stations_of("pallet") if needs is None or "pallet" in needs else ()
        for station in pallets:
            self._build_box_station(station, _PALLET_COLOR)
        robot_station = site.station(site.site.robot.station_id)
        robot_pos, robot_rpy = site.world_pose(robot_station.station_id)
        self.robot_yaw = robot_rpy[2]
        self.arm = CartesianArm(
            sim,
            site.site.robot.model,
            robot_pos,
            self.robot_yaw,
            site.site.robot.controller,
            workspace_min_z=self.min_tool_z(),
        )
        self._views: dict[float, Camera] = {}

    @staticmethod
    def check_stations(site: SiteSpec, needs: Collection[StationKind], task: str = "") -> None:
        """Check that the site has a station of every kind in ``needs``.

        Raises:
            MissingStationError: Naming the first missing kind (and the task, if given).
        """
        for kind in needs:
            if not site.stations_of(kind):
                raise MissingStationError(site.site_id, kind, task or "this task")

    # ------------------------------------------------------------------ building

    def _build_conveyor(self, station: Station) -> None:
        site = self.site
        self.conveyor = self._build_box_station(station, _CONVEYOR_COLOR)
        conv_pos, conv_rpy = site.world_pose(station.station_id)
        self.belt_yaw = conv_rpy[2]
        self.belt_direction = np.array([math.cos(self.belt_yaw), math.sin(self.belt_yaw), 0.0])
        self.belt_center = np.asarray(conv_pos, dtype=np.float64)
        self.belt_half_length = station.size_x / 2.0
        self.belt_top_z = conv_pos[2] + station.size_z / 2.0
        self.belt_speed = float(station.conveyor_speed_mps or 0.0)
        v = self.belt_speed * self.belt_direction
        self._belt_velocity: Vec3 = (float(v[0]), float(v[1]), 0.0)

    def _build_box_station(self, station: Station, color: tuple[float, float, float, float]) -> int:
        position, rpy = self.site.world_pose(station.station_id)
        half = (station.size_x / 2.0, station.size_y / 2.0, station.size_z / 2.0)
        return self.sim.create_box(half, position, self.sim.quat_from_euler(rpy), 0.0, color)

    def _build_bin(self, station: Station) -> BinGeometry:
        position, rpy = self.site.world_pose(station.station_id)
        self.sim.create_open_box(
            station.size, position, self.sim.quat_from_euler(rpy), _BIN_WALL_M, _BIN_COLOR
        )
        return BinGeometry(
            station_id=station.station_id,
            center=np.asarray(position, dtype=np.float64),
            yaw=rpy[2],
            inner_half=(station.size_x / 2.0 - _BIN_WALL_M, station.size_y / 2.0 - _BIN_WALL_M),
            top_z=position[2] + station.size_z / 2.0,
            floor_z=position[2] - station.size_z / 2.0 + _BIN_WALL_M,
        )

    def camera(self, aspect: float) -> Camera:
        """The cell camera for images of ``aspect`` (width / height): the whole cell in frame.

        Framed from the layout's bounds (`envs.cells.framing`); the same direction at every
        site.
        """
        view = self._views.get(aspect)
        if view is None:
            points = framing.cell_bounds(self.site)
            view = framing.fit_camera(points, framing.view_direction(), aspect)
            self._views[aspect] = view
        return view

    def min_tool_z(self) -> float:
        """Lowest tool height worth commanding: just above the floor of the lowest bin or belt.

        With neither, just above the floor.
        """
        floors = [b.floor_z for b in self.bins]
        if self.conveyor_station is not None:
            floors.append(self.belt_top_z)
        return (min(floors) if floors else 0.0) + 0.005

    # ------------------------------------------------------------------ parts

    def create_part(self, part: Part, slot: int) -> int:
        """Create a part body parked on the floor far from the cell (slot spaces them out).

        Parts of one catalog entry share their shapes (made on first use), so an env that
        makes new part bodies every episode does not pile up shapes (or reload mesh files).
        """
        shapes = self._part_shapes.get(part.part_id)
        if shapes is None:
            shapes = self._part_shapes[part.part_id] = self._shapes_of(part)
        park = (_PARK_X_M - 0.5 * slot, 0.0, part.size_z / 2.0 + 0.001)
        return self.sim.create_body(shapes, park, mass=part.mass_kg, friction=part.friction)

    def _shapes_of(self, part: Part) -> Shapes:
        if part.shape == "cylinder":
            return self.sim.cylinder_shape(part.size_x / 2.0, part.size_z, part.color)
        if part.shape == "mesh":
            assert part.mesh_uri is not None
            path = str(self.site.root / part.mesh_uri)  # bundle-relative, e.g. assets/clip.obj
            return self.sim.mesh_shape(path, (1.0, 1.0, 1.0), part.color)
        half = (part.size_x / 2.0, part.size_y / 2.0, part.size_z / 2.0)
        return self.sim.box_shape(half, part.color)

    def place_on_belt(self, body: int, part: Part) -> None:
        """Put a part at the upstream end of the belt, aligned with it."""
        along = -self.belt_half_length + part.size_x / 2.0 + 0.03
        position = self.belt_center + along * self.belt_direction
        position[2] = self.belt_top_z + part.size_z / 2.0 + 0.001
        orientation = self.sim.quat_from_euler((0.0, 0.0, self.belt_yaw))
        self.sim.reset_base(body, tuple(position), orientation)  # type: ignore[arg-type]

    def belt_velocity(self) -> Vec3:
        """World velocity the belt gives parts resting on it."""
        return self._belt_velocity

    def along_belt(self, position: np.ndarray) -> float:
        """Signed distance along the belt from its centre (m)."""
        dx = float(position[0] - self.belt_center[0])
        dy = float(position[1] - self.belt_center[1])
        return dx * math.cos(self.belt_yaw) + dy * math.sin(self.belt_yaw)

    def on_belt(self, body: int) -> bool:
        """Whether a body touches the conveyor."""
        return bool(self.sim.contacts(body, self.conveyor))

    def bin_containing(self, position: np.ndarray) -> int | None:
        """Index of the bin whose interior holds this point, if any."""
        x, y, z = float(position[0]), float(position[1]), float(position[2])
        for index, geometry in enumerate(self.bins):
            if not geometry.floor_z - 0.01 <= z <= geometry.top_z + 0.02:
                continue
            rx, ry = x - float(geometry.center[0]), y - float(geometry.center[1])
            cos, sin = math.cos(-geometry.yaw), math.sin(-geometry.yaw)
            if (
                abs(cos * rx - sin * ry) <= geometry.inner_half[0]
                and abs(sin * rx + cos * ry) <= geometry.inner_half[1]
            ):
                return index
        return None

    def drop_point(self, bin_index: int) -> np.ndarray:
        """A point just above a bin's opening, where a held part should be released."""
        geometry = self.bins[bin_index]
        return np.array([geometry.center[0], geometry.center[1], geometry.top_z + 0.06])


def station_camera(site: SiteSpec, station_id: str) -> Camera:
    """A camera at a camera station, looking along the station's x axis (roll-pitch-yaw).

    Raises:
        ValueError: Naming the site's camera stations, if ``station_id`` is not one of them.
    """
    cameras = [s.station_id for s in site.stations_of("camera")]
    if station_id not in cameras:
        raise ValueError(
            f"camera: {station_id!r} is not a camera station of site {site.site_id!r} "
            f"(stations.csv has {cameras or 'none'})"
        )
    eye, (_, pitch, yaw) = site.world_pose(station_id)
    forward = (np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch))
    target = tuple(float(e + f) for e, f in zip(eye, forward, strict=True))
    return Camera(eye=tuple(float(e) for e in eye), target=target)  # type: ignore[arg-type]
