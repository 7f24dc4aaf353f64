"""The factory-data schema: what a site's bundle may say, in SI units with z up.

A bundle is a folder::

    site.yaml       -> SiteFile        (one mapping)
    stations.csv    -> Station rows    (layout)
    parts.csv       -> Part rows       (parts catalog)
    arrivals.csv    -> Arrival rows    (production log)
    assets/         meshes referenced by parts.csv ``mesh_uri``

The loader (`envs.factory.loader`) parses the files into these models, collects every error of
every file, runs the cross-file checks and returns a frozen `SiteSpec`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from envs.factory._model import IDENTIFIER_PATTERN
from envs.factory._model import Frozen as _Frozen
from envs.factory.governance import GovernanceSpec
from envs.factory.task_sections import TaskSection
from envs.safety.coworker_spec import CoworkerSpec
from envs.safety.profiles import (
    JurisdictionProfile,
    ProfileError,
    Tightening,
    effective_profile,
    load_profile,
)
from envs.safety.safeguards import Safeguard

Vec3 = tuple[float, float, float]
Rgba = tuple[float, float, float, float]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# Physical bounds. Factory data is untrusted input: finite but absurd values (a robot base at
# 1e300 m, a belt at 1e300 m/s) make PyBullet hang or return non-finite states, so the schema
# refuses anything no real cell has.
WORLD_LIMIT_M = 100.0
"""Largest station coordinate and extent (m): a cell fits in a 200 m cube around the origin."""
ANGLE_LIMIT_RAD = 6.2832
"""Largest station angle magnitude (rad): 2 pi, rounded up."""
ZONE_LIMIT_M = 1000.0
"""Largest keep-out zone coordinate (m)."""
Coordinate = Annotated[float, Field(ge=-WORLD_LIMIT_M, le=WORLD_LIMIT_M, allow_inf_nan=False)]
Angle = Annotated[float, Field(ge=-ANGLE_LIMIT_RAD, le=ANGLE_LIMIT_RAD, allow_inf_nan=False)]
Extent = Annotated[float, Field(ge=0, le=WORLD_LIMIT_M, allow_inf_nan=False)]
ZoneCoordinate = Annotated[float, Field(ge=-ZONE_LIMIT_M, le=ZONE_LIMIT_M, allow_inf_nan=False)]
Acceleration = Annotated[float, Field(ge=-100.0, le=100.0, allow_inf_nan=False)]
_NUMBER = r"\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*"
_FRACTION = re.compile(f"{_NUMBER}/{_NUMBER}")

RobotModel = Literal["panda", "kuka_iiwa", "xarm6"]
GripperKind = Literal["suction", "fingers"]
StationKind = Literal["robot", "conveyor", "fixture", "bin", "table", "camera", "pallet", "walkway"]
PartShape = Literal["box", "cylinder", "mesh"]


S = TypeVar("S", bound=_Frozen)


# --------------------------------------------------------------------------------- site.yaml


class Provenance(_Frozen):
    """Where the bundle's data came from. Synthetic data must say so."""

    source: Literal["synthetic", "measured", "imported"]
    generator: str | None = None
    seed: int | None = None
    notes: str = ""


class PhysicsSpec(_Frozen):
    """Physics engine settings; the defaults give bit-identical replays."""

    time_step_s: Annotated[float, Field(gt=0, le=0.01, allow_inf_nan=False)] = 1.0 / 240.0
    """Seconds per physics step: a number, or a fraction as people write it (``1/240``)."""
    solver_iterations: Annotated[int, Field(ge=1, le=500)] = 50

    @field_validator("time_step_s", mode="before")
    @classmethod
    def _fraction(cls, value: object) -> object:
        if isinstance(value, str) and "/" in value:
            match = _FRACTION.fullmatch(value)
            if match is None or float(match[2]) == 0.0:
                raise ValueError("expected a number or a fraction such as 1/240")
            return float(match[1]) / float(match[2])
        return value


class GripperSpec(_Frozen):
    """The end effector.

    ``suction``: a cup that holds a part while on and touching its top face. ``fingers``: the
    robot model's parallel-jaw fingers, which hold a part by friction while closed on it
    (`envs.cells.fingers`); the finger settings default to the values a PyBullet probe pinned
    (DESIGN.md, simulation notes) and are read only by that kind.
    """

    kind: GripperKind = "suction"
    max_force_n: Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)] = 60.0
    """Largest force the grip transmits; faster moves with heavier parts tear it off."""
    capture_distance_m: Annotated[float, Field(gt=0, le=0.05)] = 0.012
    """Suction engages when the cup is this close to the part's top face."""
    grip_force_n: Annotated[float, Field(ge=20.0, le=500.0, allow_inf_nan=False)] = 40.0
    """Force each finger presses with when closed (below 20 N parts slip in the probe)."""
    finger_friction: Annotated[float, Field(ge=1.0, le=5.0, allow_inf_nan=False)] = 1.0
    """Lateral friction coefficient of the finger pads (below 1.0 parts slip in the probe)."""
    opening_m: Annotated[float, Field(ge=0.01, le=0.2, allow_inf_nan=False)] | None = None
    """Gap between the open fingers; None opens them as wide as the model allows."""


class ControllerSpec(_Frozen):
    """The Cartesian controller that turns end-effector deltas into joint targets."""

    max_ee_speed_mps: Annotated[float, Field(gt=0, le=3.0)] = 0.5
    """End-effector speed commanded by an action component of magnitude 1."""
    ik_iterations: Annotated[int, Field(ge=1, le=500)] = 50
    ik_residual_m: Annotated[float, Field(gt=0, le=0.01)] = 1e-4
    position_gain: Annotated[float, Field(gt=0, le=1.0)] = 0.3
    velocity_gain: Annotated[float, Field(gt=0, le=5.0)] = 1.0
    joint_force_scale: Annotated[float, Field(gt=0, le=10.0)] = 1.0
    """Multiplier on the URDF joint force limits."""


class RobotSpec(_Frozen):
    """Which robot stands in the cell, where, and with what gripper and controller."""

    model: RobotModel
    station_id: Identifier
    """The ``robot`` row of stations.csv that places the robot base."""
    gripper: GripperSpec = GripperSpec()
    controller: ControllerSpec = ControllerSpec()


class SensorSpec(_Frozen):
    """How observations are corrupted before a policy sees them."""

    position_noise_m: Annotated[float, Field(ge=0, le=0.1)] = 0.0
    velocity_noise_mps: Annotated[float, Field(ge=0, le=1.0)] = 0.0
    latency_steps: Annotated[int, Field(ge=0, le=50)] = 0
    dropout_prob: Annotated[float, Field(ge=0, lt=1.0)] = 0.0
    """Chance that a part-tracking reading repeats the previous one."""


class PolicyLinkSpec(_Frozen):
    """The network between the cell and its policy, as seen by the robot."""

    latency_steps: Annotated[int, Field(ge=0, le=50)] = 0
    """Control steps between an action being chosen and reaching the robot."""


class KeepOutZone(_Frozen):
    """An axis-aligned box in world coordinates the tool centre point must not enter."""

    name: Identifier
    min_xyz: tuple[ZoneCoordinate, ZoneCoordinate, ZoneCoordinate]
    max_xyz: tuple[ZoneCoordinate, ZoneCoordinate, ZoneCoordinate]

    @model_validator(mode="after")
    def _ordered(self) -> KeepOutZone:
        if any(lo >= hi for lo, hi in zip(self.min_xyz, self.max_xyz, strict=True)):
            raise ValueError("expected min_xyz below max_xyz on every axis")
        return self


class SafetySpec(_Frozen):
    """The site's safety profile; violations are counted, not enforced.

    ``jurisdiction`` names a shipped jurisdiction profile (`envs.safety.profiles`: KR, JP, US,
    EU) whose collaborative-operation values apply; ``tighten`` may make any of them stricter,
    never looser.
    """

    max_tcp_speed_mps: Annotated[float, Field(gt=0, le=100.0, allow_inf_nan=False)]
    max_contact_force_n: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
    keep_out_zones: tuple[KeepOutZone, ...] = ()
    jurisdiction: str | None = None
    tighten: Tightening = Tightening()
    safeguards: tuple[Safeguard, ...] = ()
    """Fences and sensing protective devices, checked against the jurisdiction's
    requirements where co-workers enter the cell (`envs.safety.safeguards`)."""

    @field_validator("jurisdiction")
    @classmethod
    def _known_jurisdiction(cls, code: str | None) -> str | None:
        if code is not None:
            try:
                load_profile(code)
            except ProfileError as exc:
                raise ValueError(exc.expected) from None
        return code

    @field_validator("tighten")
    @classmethod
    def _only_tightened(cls, tighten: Tightening, info: ValidationInfo) -> Tightening:
        code = info.data.get("jurisdiction")
        if tighten == Tightening():
            return tighten
        if code is None:
            raise ValueError("a safety.jurisdiction whose values it tightens")
        try:
            effective_profile(load_profile(code), tighten)
        except ProfileError as exc:
            raise ValueError(f"{exc.key.removeprefix('safety.tighten.')} {exc.expected}") from None
        return tighten

    def profile(self) -> JurisdictionProfile | None:
        """The jurisdiction's profile with the site's tightening, or None without one."""
        if self.jurisdiction is None:
            return None
        return effective_profile(load_profile(self.jurisdiction), self.tighten)


class SiteFile(_Frozen):
    """The contents of ``site.yaml``."""

    site_id: Slug
    name: str
    provenance: Provenance
    gravity_mps2: tuple[Acceleration, Acceleration, Acceleration] = (0.0, 0.0, -9.81)
    physics: PhysicsSpec = PhysicsSpec()
    control_rate_hz: Annotated[float, Field(gt=0, le=240)]
    robot: RobotSpec
    sensors: SensorSpec = SensorSpec()
    policy_link: PolicyLinkSpec = PolicyLinkSpec()
    safety: SafetySpec
    takt_time_s: Annotated[float, Field(gt=0, le=86_400.0, allow_inf_nan=False)]
    tasks: tuple[TaskSection, ...] = ()
    """The tasks' own sections, one per ``kind`` (`envs.factory.task_sections`)."""
    coworkers: tuple[CoworkerSpec, ...] = ()
    """People who walk into the cell (`envs.safety.coworker_spec`)."""
    governance: GovernanceSpec = GovernanceSpec()
    """What may leave the site, per artifact class (`envs.factory.governance`)."""

    @model_validator(mode="before")
    @classmethod
    def _no_single_task(cls, data: Any) -> Any:
        if isinstance(data, dict) and "task" in data:
            raise ValueError(
                "task: expected a tasks: list with one section per task, keyed on kind, e.g. "
                "tasks: [{kind: conveyor-sort, parts_per_episode: 3, time_limit_s: 35}] "
                "(the single task: section of format 1 is gone)"
            )
        return data

    @field_validator("tasks")
    @classmethod
    def _one_section_per_kind(cls, tasks: tuple[TaskSection, ...]) -> tuple[TaskSection, ...]:
        kinds = [section.kind for section in tasks]
        twice = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if twice:
            raise ValueError(f"expected one section per task kind, got {', '.join(twice)} twice")
        return tasks

    def task_section(self, section_type: type[S]) -> S:
        """The site's section of one task, or that section's defaults if the site lists none."""
        for section in self.tasks:
            if isinstance(section, section_type):
                return section
        return section_type()

    @field_validator("control_rate_hz")
    @classmethod
    def _control_rate_divides_physics(cls, rate: float, info: ValidationInfo) -> float:
        # A field validator (not a model one) so the error names control_rate_hz; physics is
        # declared first, so it is in info.data unless it failed validation itself.
        physics = info.data.get("physics")
        if physics is None:
            return rate
        substeps = 1.0 / (physics.time_step_s * rate)
        if substeps < 1 or abs(substeps - round(substeps)) > 1e-6:
            raise ValueError(
                "expected a control_rate_hz that divides the physics rate 1/physics.time_step_s "
                f"(gives {substeps:.3f} physics steps per control step, need an integer >= 1)"
            )
        return rate

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return round(1.0 / (self.physics.time_step_s * self.control_rate_hz))


# ----------------------------------------------------------------------------- stations.csv


class Station(_Frozen):
    """One row of stations.csv: a piece of the cell's layout.

    The pose (x, y, z, rx, ry, rz; metres and radians, roll-pitch-yaw) is the centre of the
    station's bounding box, relative to its parent station if ``parent_id`` is set (translation
    then yaw of the parent), else in the world frame. ``size`` is the full extent along the
    station's own axes. A conveyor's belt runs along its local +x; its top face is at
    ``z + size_z / 2``. A pallet is a level box cartons are stacked on (top at
    ``z + size_z / 2``). A bin is an open box; ``accepts`` lists the part_ids sorted into it. A
    robot's (x, y, z) is its base.
    """

    station_id: Identifier
    kind: StationKind
    parent_id: Identifier | None = None
    x: Coordinate
    y: Coordinate
    z: Coordinate
    rx: Angle = 0.0
    ry: Angle = 0.0
    rz: Angle = 0.0
    size_x: Extent = 0.0
    size_y: Extent = 0.0
    size_z: Extent = 0.0
    conveyor_speed_mps: Annotated[float, Field(ge=0, le=5.0, allow_inf_nan=False)] | None = None
    payload_kg: Annotated[float, Field(ge=0, le=10_000.0, allow_inf_nan=False)] | None = None
    accepts: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _kind_fields(self) -> Station:
        if self.kind == "conveyor" and self.conveyor_speed_mps is None:
            raise ValueError("expected conveyor_speed_mps on a conveyor station")
        if (
            self.kind in ("conveyor", "bin", "table", "fixture", "pallet")
            and min(self.size_x, self.size_y, self.size_z) <= 0
        ):
            raise ValueError(f"expected size_x, size_y and size_z > 0 on a {self.kind} station")
        if self.kind == "walkway" and (min(self.size_x, self.size_y) <= 0 or self.rx or self.ry):
            raise ValueError(
                "expected size_x (the path's length) and size_y > 0 and rx = ry = 0 on a walkway"
            )
        if self.kind == "pallet" and (self.rx or self.ry):
            raise ValueError("expected rx = ry = 0 on a pallet (it stands level; turn it with rz)")
        if self.kind == "bin" and not self.accepts:
            raise ValueError("expected accepts on a bin station (part_ids separated by '|')")
        if self.kind != "bin" and self.accepts:
            raise ValueError(
                f"expected no accepts on a {self.kind} station (only bins accept parts)"
            )
        return self

    @property
    def position(self) -> Vec3:
        """Pose translation (parent frame)."""
        return (self.x, self.y, self.z)

    @property
    def size(self) -> Vec3:
        """Full extents along the station's axes."""
        return (self.size_x, self.size_y, self.size_z)


# -------------------------------------------------------------------------------- parts.csv


class Part(_Frozen):
    """One row of parts.csv: a stock-keeping unit the cell handles.

    ``size`` is the full extent: box (x, y, z), cylinder (diameter, diameter, height), mesh (the
    mesh's bounding box after scaling). ``color`` is ``#RRGGBB`` or ``#RRGGBBAA`` in the CSV.
    """

    part_id: Identifier
    name: str
    shape: PartShape
    size_x: Annotated[float, Field(gt=0, le=2.0, allow_inf_nan=False)]
    size_y: Annotated[float, Field(gt=0, le=2.0, allow_inf_nan=False)]
    size_z: Annotated[float, Field(gt=0, le=2.0, allow_inf_nan=False)]
    mass_kg: Annotated[float, Field(gt=0, le=100.0, allow_inf_nan=False)]
    friction: Annotated[float, Field(ge=0, le=5.0, allow_inf_nan=False)] = 0.8
    color: Rgba = (0.5, 0.5, 0.5, 1.0)
    mesh_uri: str | None = None

    @field_validator("color", mode="before")
    @classmethod
    def _parse_hex(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lstrip("#")
            if len(text) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in text):
                raise ValueError("expected a color as #RRGGBB or #RRGGBBAA")
            channels = [int(text[i : i + 2], 16) / 255.0 for i in range(0, len(text), 2)]
            return tuple(channels + [1.0] * (4 - len(channels)))
        return value

    @model_validator(mode="after")
    def _mesh_needs_uri(self) -> Part:
        if self.shape == "mesh" and not self.mesh_uri:
            raise ValueError("expected mesh_uri on a mesh part (a file under assets/)")
        return self

    @property
    def size(self) -> Vec3:
        """Full extents."""
        return (self.size_x, self.size_y, self.size_z)


# ----------------------------------------------------------------------------- arrivals.csv


class Arrival(_Frozen):
    """One row of arrivals.csv, the production log (an event log: case, activity, timestamp).

    Rows whose ``activity`` is ``arrive`` at a conveyor station define the arrival process;
    other activities (``pick``, ``sort``, ``inspect`` ...) are kept for provenance.
    """

    timestamp: datetime
    case_id: Identifier
    part_id: Identifier
    station_id: Identifier
    activity: Identifier

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_8601(cls, value: object) -> object:
        # pydantic alone would also read "1700000000" as Unix seconds; a log must say what it means.
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    "expected an ISO 8601 timestamp, e.g. 2025-03-03T06:00:00.000+09:00"
                ) from None
        return value


class ArrivalProcess(_Frozen):
    """Part mix and inter-arrival times derived from the production log."""

    inter_arrival_s: tuple[PositiveFloat, ...]
    """Empirical gaps between consecutive arrivals (seconds); episodes resample them."""
    part_shares: dict[str, float]
    """Fraction of arrivals per part_id; sums to 1."""

    @property
    def mean_inter_arrival_s(self) -> float:
        """Mean gap between arrivals."""
        return math.fsum(self.inter_arrival_s) / len(self.inter_arrival_s)


# -------------------------------------------------------------------------------- the whole


class SiteSpec(_Frozen):
    """A validated factory bundle: everything needed to build a site's cell."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    root: Path
    bundle_hash: str
    """sha256 over the bundle's files (names and bytes), for provenance and replay."""
    site: SiteFile
    stations: tuple[Station, ...]
    parts: tuple[Part, ...]
    arrivals: tuple[Arrival, ...]
    arrival_process: ArrivalProcess

    @property
    def site_id(self) -> str:
        """The site's name, e.g. ``kr-changwon``."""
        return self.site.site_id

    def station(self, station_id: str) -> Station:
        """Return the station with this id (KeyError if there is none)."""
        for station in self.stations:
            if station.station_id == station_id:
                return station
        raise KeyError(station_id)

    def part(self, part_id: str) -> Part:
        """Return the part with this id (KeyError if there is none)."""
        for part in self.parts:
            if part.part_id == part_id:
                return part
        raise KeyError(part_id)

    def stations_of(self, kind: StationKind) -> tuple[Station, ...]:
        """Every station of one kind, in file order."""
        return tuple(s for s in self.stations if s.kind == kind)

    @property
    def conveyor(self) -> Station:
        """The conveyor parts arrive on (the first conveyor station)."""
        return self.stations_of("conveyor")[0]

    @property
    def bins(self) -> tuple[Station, ...]:
        """Bins in file order; a part's type index is the index of its bin here."""
        return self.stations_of("bin")

    def bin_index_for(self, part_id: str) -> int:
        """Index into `bins` of the bin that accepts this part."""
        for index, station in enumerate(self.bins):
            if part_id in station.accepts:
                return index
        raise KeyError(part_id)

    def world_pose(self, station_id: str) -> tuple[Vec3, Vec3]:
        """World position and roll-pitch-yaw of a station, resolving its parent chain."""
        station = self.station(station_id)
        position = station.position
        rpy = (station.rx, station.ry, station.rz)
        seen = {station_id}
        parent_id = station.parent_id
        while parent_id is not None:
            if parent_id in seen:
                raise ValueError(f"station parent cycle through {parent_id!r}")
            seen.add(parent_id)
            parent = self.station(parent_id)
            cos, sin = math.cos(parent.rz), math.sin(parent.rz)
            px, py, pz = position
            position = (
                parent.x + cos * px - sin * py,
                parent.y + sin * px + cos * py,
                parent.z + pz,
            )
            rpy = (rpy[0], rpy[1], rpy[2] + parent.rz)
            parent_id = parent.parent_id
        return position, rpy
