"""A kinematic person in the cell: boxes per ISO/TS 15066 body region, moved along a walkway.

The body is one static multibody (the pelvis its base, every other region a rigidly joined
link), built once with the cell and parked out of the world between visits, so the engine's
state and body ids do not depend on the schedule. Its pose is a pure function of the episode's
visit schedule and the simulated time; only the schedule is state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.factory.schema import SiteSpec, Station
from envs.safety.coworker_spec import CoworkerSpec
from envs.safety.standards import BodyRegion
from envs.sim import Sim, Vec3

PARKED: Vec3 = (0.0, 0.0, -50.0)
"""Where a person who is not in the cell waits (far below the floor, out of every query)."""
_SKIN = (0.95, 0.75, 0.6, 1.0)
_CLOTH = (0.2, 0.35, 0.7, 1.0)
MAX_VISITS = 64

# Region, half extents and centre offset from the pelvis centre, for a 1.75 m person facing +x
# (scaled by height). The first row is the base (the pelvis).
_BODY: tuple[tuple[BodyRegion, Vec3, Vec3], ...] = (
    ("pelvis", (0.10, 0.17, 0.07), (0.0, 0.0, 0.0)),
    ("lower_legs", (0.08, 0.10, 0.25), (0.0, 0.0, -0.72)),
    ("thighs_knees", (0.09, 0.11, 0.20), (0.0, 0.0, -0.27)),
    ("abdomen", (0.10, 0.16, 0.08), (0.0, 0.0, 0.15)),
    ("chest", (0.11, 0.18, 0.12), (0.0, 0.0, 0.35)),
    ("back_shoulders", (0.02, 0.18, 0.12), (-0.13, 0.0, 0.37)),
    ("neck", (0.05, 0.05, 0.05), (0.0, 0.0, 0.52)),
    ("skull_forehead", (0.09, 0.08, 0.11), (-0.02, 0.0, 0.67)),
    ("face", (0.02, 0.07, 0.08), (0.09, 0.0, 0.64)),
    ("upper_arm_elbow", (0.05, 0.05, 0.15), (0.0, 0.24, 0.28)),
    ("upper_arm_elbow", (0.05, 0.05, 0.15), (0.0, -0.24, 0.28)),
    ("lower_arm_wrist", (0.04, 0.04, 0.13), (0.0, 0.24, 0.0)),
    ("lower_arm_wrist", (0.04, 0.04, 0.13), (0.0, -0.24, 0.0)),
    ("hands_fingers", (0.02, 0.04, 0.06), (0.0, 0.24, -0.19)),
    ("hands_fingers", (0.02, 0.04, 0.06), (0.0, -0.24, -0.19)),
)
_PELVIS_HEIGHT = 0.97  # of a 1.75 m person


@dataclass(frozen=True)
class Visit:
    """One visit: walk in from ``start_s``, dwell, walk back out."""

    start_s: float
    walk_s: float
    dwell_s: float

    @property
    def end_s(self) -> float:
        """When the person has left again."""
        return self.start_s + 2 * self.walk_s + self.dwell_s

    def progress(self, now_s: float) -> tuple[float, int] | None:
        """(fraction of the walkway covered, direction +1 in / -1 out), or None if away."""
        t = now_s - self.start_s
        if t < 0 or now_s >= self.end_s:
            return None
        if t < self.walk_s:
            return t / self.walk_s, 1
        if t < self.walk_s + self.dwell_s:
            return 1.0, 1
        return 1.0 - (t - self.walk_s - self.dwell_s) / self.walk_s, -1


class Coworker:
    """One person of site.yaml's ``coworkers:`` in a built cell.

    Args:
        sim: The cell's simulator.
        spec: The person's entry in site.yaml.
        walkway: Their walkway station (world pose resolved by the site).
        walkway_yaw: The walkway's world yaw (rad).
    """

    def __init__(self, sim: Sim, spec: CoworkerSpec, walkway: Vec3, walkway_yaw: float,
                 length_m: float) -> None:  # fmt: skip
        self.sim, self.spec = sim, spec
        self.scale = spec.height_m / 1.75
        self.axis = np.array([math.cos(walkway_yaw), math.sin(walkway_yaw), 0.0])
        centre = np.array(walkway, dtype=np.float64)
        self.start = centre - self.axis * (length_m / 2.0)
        self.length_m = length_m
        self.yaw = walkway_yaw
        boxes = [
            (_scaled(half, self.scale), _scaled(offset, self.scale), _SKIN if i > 5 else _CLOTH)
            for i, (_, half, offset) in enumerate(_BODY)
        ]
        self.body = sim.create_compound(boxes, PARKED)
        #: Body region of each link index (-1 is the base).
        self.regions: dict[int, BodyRegion] = {i - 1: r for i, (r, _, _) in enumerate(_BODY)}
        self.visits: list[Visit] = []
        self.present = False
        self.position: tuple[float, float, float] = PARKED  # where move_to last put them
        self._parked = False  # known to be parked: moving there again can be skipped

    def schedule(self, rng: np.random.Generator | None, horizon_s: float) -> None:
        """Draw the episode's visits up to ``horizon_s`` (seeded exponential gaps)."""
        spec = self.spec
        self._parked = False
        walk_s = self.length_m / spec.speed_mps
        self.visits, start = [], spec.first_arrival_s
        while start < horizon_s and len(self.visits) < MAX_VISITS:
            visit = Visit(start, walk_s, spec.dwell_s)
            self.visits.append(visit)
            if spec.mean_gap_s <= 0 or rng is None:
                break
            start = visit.end_s + float(rng.exponential(spec.mean_gap_s))

    def move_to(self, now_s: float) -> None:
        """Put the person where the schedule has them at ``now_s`` (or parked)."""
        where = next((p for v in self.visits if (p := v.progress(now_s)) is not None), None)
        self.present = where is not None
        if where is None:
            if not self._parked:
                self.sim.reset_base(self.body, PARKED)
                self.position, self._parked = PARKED, True
            return
        self._parked = False
        fraction, direction = where
        point = self.start + self.axis * (fraction * self.length_m)
        position = (float(point[0]), float(point[1]), _PELVIS_HEIGHT * self.scale)
        self.position = position
        yaw = self.yaw if direction > 0 else self.yaw + math.pi
        self.sim.reset_base(self.body, position, Sim.quat_from_euler((0.0, 0.0, yaw)))

    def state(self) -> list[list[float]]:
        """The schedule, as JSON values."""
        return [[v.start_s, v.walk_s, v.dwell_s] for v in self.visits]

    def load_state(self, visits: Sequence[Sequence[float]]) -> None:
        """Put back a `state` schedule."""
        self.visits = [Visit(*map(float, v)) for v in visits]
        self._parked = False  # the restored world may have the person anywhere


def build_coworkers(sim: Sim, site: SiteSpec) -> list[Coworker]:
    """Every person of the site's ``coworkers:``, parked, in site.yaml order."""
    people = []
    for spec in site.site.coworkers:
        walkway: Station = site.station(spec.walkway)
        position, rpy = site.world_pose(walkway.station_id)
        people.append(Coworker(sim, spec, position, rpy[2], walkway.size_x))
    return people


def _scaled(v: Vec3, scale: float) -> Vec3:
    return (v[0] * scale, v[1] * scale, v[2] * scale)
