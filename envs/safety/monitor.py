"""Per-step safety monitoring of people in the cell against the jurisdiction's values.

Every control step, for each person present: the separation distance between the robot and
the person (closest points) against the protective separation distance S_p at the TCP's speed
(speed-and-separation monitoring), the TCP speed while the person is inside the collaborative
zone against the reduced speed, and the contact force on each body region against its ISO/TS
15066 limit (transient for the first `QUASI_STATIC_AFTER_S` of a contact, quasi-static after).
Where the profile says ``protective_stop``, an SSM or reduced-speed violation stops the arm
(it holds its pose) from the next step until the separation is restored: time lost is counted.
Indicative simulation checks, not a certification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.safety.coworker import Coworker
from envs.safety.profiles import JurisdictionProfile
from envs.safety.standards import (
    REDUCED_SPEED_MPS,
    REGIONS,
    BodyRegion,
    SeparationParams,
    protective_separation,
)
from envs.sim import Sim

QUASI_STATIC_AFTER_S = 0.5
"""A contact that lasts longer than this is clamping (quasi-static), not transient."""
QUERY_M = 3.0
"""Closest-point queries look this far; a person farther away reads as this distance."""
NEAR_MARGIN_M = 0.1
"""A step's closest-point query looks only this much beyond the last separation; an empty
answer (the two moved apart by more) falls back to `QUERY_M`, so the reading is exact either
way and the margin only trades the two queries' costs. Each point PyBullet returns costs a
Python tuple, and at 3 m nearly every pair of the arm's and the person's links answers (~420
points a step at us-austin; ~27 with this margin, measured with cProfile)."""
MONITOR_KINDS = ("ssm", "reduced_speed", "pfl")


@dataclass(frozen=True)
class MonitorLimits:
    """The values the monitor checks against (the jurisdiction's, tightened by the site).

    Attributes:
        reduced_speed_mps: TCP speed limit while a person is in the collaborative zone.
        pfl_scale: Multiplier on every body-region force limit.
        separation: The S_p terms.
        protective_stop: Whether a violation stops the arm (else it is only counted).
        source: The profile's code, or ``ISO`` for the standards' values without one.
    """

    reduced_speed_mps: float
    pfl_scale: float
    separation: SeparationParams
    protective_stop: bool
    source: str

    @classmethod
    def of(cls, profile: JurisdictionProfile | None) -> MonitorLimits:
        """The limits of a jurisdiction profile; the standards' values (record only) without."""
        if profile is None:
            return cls(REDUCED_SPEED_MPS, 1.0, SeparationParams(), False, "ISO")
        return cls(
            profile.reduced_speed_mps,
            profile.pfl_scale,
            profile.separation.params(),
            profile.on_violation == "protective_stop",
            profile.code,
        )


class CoworkerMonitor:
    """Watches the people of a cell every step and keeps the episode's safety totals.

    Args:
        sim: The cell's simulator.
        people: The cell's co-workers (`envs.safety.coworker.build_coworkers`).
        limits: What to check against.
        robot_body: The arm's body id.
        robot_base: The arm's base position (world), for the collaborative zone.
        control_dt: Seconds per control step.
    """

    def __init__(
        self,
        sim: Sim,
        people: list[Coworker],
        limits: MonitorLimits,
        robot_body: int,
        robot_base: Sequence[float] | np.ndarray,
        control_dt: float,
    ) -> None:
        self.sim, self.people, self.limits = sim, people, limits
        self.robot_body = robot_body
        self.robot_xy = np.array(robot_base[:2], dtype=np.float64)
        self._robot_x, self._robot_y = float(robot_base[0]), float(robot_base[1])
        self.control_dt = control_dt
        self._reset_totals()

    def _reset_totals(self) -> None:
        self.stopped = False
        self.present_s = 0.0
        self.min_separation_m = math.inf
        self.min_margin_m = math.inf
        self.violations = dict.fromkeys(MONITOR_KINDS, 0)
        self.peak_force_n = 0.0
        self.peak_region: str = ""
        self.peak_ratio = 0.0
        self.stops = 0
        self.stop_time_s = 0.0
        self.contact_s = [0.0 for _ in self.people]
        self._last_separation = [QUERY_M for _ in self.people]

    def reset(self, rng: np.random.Generator, horizon_s: float) -> None:
        """Draw each person's visits for an episode of ``horizon_s`` and place them."""
        self._reset_totals()
        for person in self.people:
            person.schedule(rng, horizon_s)
            person.move_to(0.0)

    def before_physics(self, step_end_s: float) -> bool:
        """Move everyone to where they are at the end of this step; True: the arm must hold."""
        for person in self.people:
            person.move_to(step_end_s)
        if self.stopped:
            self.stop_time_s += self.control_dt
        return self.stopped

    def check(self, tool_speed_mps: float) -> list[str]:
        """Check the step's readings against the limits; returns the violated rules."""
        limits, violated = self.limits, set()
        safe_everywhere = True
        for index, person in enumerate(self.people):
            if not person.present:
                self.contact_s[index] = 0.0
                self._last_separation[index] = QUERY_M
                continue
            self.present_s += self.control_dt
            separation = self._separation(index, person)
            needed = protective_separation(tool_speed_mps, limits.separation)
            self.min_separation_m = min(self.min_separation_m, separation)
            self.min_margin_m = min(self.min_margin_m, separation - needed)
            if separation < needed:
                violated.add("ssm")
            if separation < protective_separation(0.0, limits.separation):
                safe_everywhere = False  # even a stopped arm is too close: stay stopped
            zone = person.spec.collaborative_zone_m
            if self._horizontal_distance(person) < zone and tool_speed_mps > (
                limits.reduced_speed_mps
            ):
                violated.add("reduced_speed")
            if self._pfl_exceeded(index, person):
                violated.add("pfl")
        for kind in violated:
            self.violations[kind] += 1
        if limits.protective_stop:
            was = self.stopped
            self.stopped = bool(violated & {"ssm", "reduced_speed"}) or (
                was and not safe_everywhere
            )
            self.stops += int(self.stopped and not was)
        return sorted(violated)

    def _separation(self, index: int, person: Coworker) -> float:
        near = self._last_separation[index] + NEAR_MARGIN_M
        points = (
            self.sim.closest_points(self.robot_body, person.body, near) if near < QUERY_M else []
        )
        if not points:  # farther than the last reading allowed for: look all the way
            points = self.sim.closest_points(self.robot_body, person.body, QUERY_M)
        separation = max(min((p[8] for p in points), default=QUERY_M), 0.0)
        self._last_separation[index] = separation
        return separation

    def _horizontal_distance(self, person: Coworker) -> float:
        position = person.position  # set by move_to this step: no engine query
        return math.hypot(position[0] - self._robot_x, position[1] - self._robot_y)

    def _pfl_exceeded(self, index: int, person: Coworker) -> bool:
        forces: dict[BodyRegion, float] = {}
        for point in self.sim.contacts(self.robot_body, person.body):
            region = person.regions[point[4]]
            forces[region] = forces.get(region, 0.0) + float(point[9])
        if not forces:
            self.contact_s[index] = 0.0
            return False
        self.contact_s[index] += self.control_dt
        transient = self.contact_s[index] <= QUASI_STATIC_AFTER_S
        exceeded = False
        for region, force in forces.items():
            limit = REGIONS[region].force_limit(transient) * self.limits.pfl_scale
            ratio = force / limit
            if ratio > self.peak_ratio:
                self.peak_ratio, self.peak_force_n, self.peak_region = ratio, force, region
            exceeded |= force > limit
        return exceeded

    def summary(self) -> dict[str, Any]:
        """The episode's co-worker safety figures (added to the episode summary)."""
        seen = self.present_s > 0
        return {
            "coworker_present_s": self.present_s,
            "min_separation_m": self.min_separation_m if seen else math.nan,
            "min_ssm_margin_m": self.min_margin_m if seen else math.nan,
            "violations_ssm": self.violations["ssm"],
            "violations_reduced_speed": self.violations["reduced_speed"],
            "violations_pfl": self.violations["pfl"],
            "pfl_peak_force_n": self.peak_force_n,
            "pfl_peak_region": self.peak_region,
            "protective_stops": self.stops,
            "protective_stop_time_s": self.stop_time_s,
            "safety_profile": self.limits.source,
        }

    def state(self) -> dict[str, Any]:
        """Schedules and running totals, as JSON values (for env snapshots)."""
        totals = {
            "stopped": self.stopped, "present_s": self.present_s,
            "min_separation_m": _finite(self.min_separation_m),
            "min_margin_m": _finite(self.min_margin_m), "violations": dict(self.violations),
            "peak": [self.peak_force_n, self.peak_region, self.peak_ratio],
            "stops": self.stops, "stop_time_s": self.stop_time_s,
            "contact_s": list(self.contact_s),
        }  # fmt: skip
        return {"coworkers": {"visits": [p.state() for p in self.people], "totals": totals}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back what `state` returned."""
        saved = state["coworkers"]
        for person, visits in zip(self.people, saved["visits"], strict=True):
            person.load_state(visits)
        totals = saved["totals"]
        self.stopped, self.present_s = totals["stopped"], totals["present_s"]
        self.min_separation_m = _infinite(totals["min_separation_m"])
        self.min_margin_m = _infinite(totals["min_margin_m"])
        self.violations = dict(totals["violations"])
        self.peak_force_n, self.peak_region, self.peak_ratio = totals["peak"]
        self.stops, self.stop_time_s = totals["stops"], totals["stop_time_s"]
        self.contact_s = list(totals["contact_s"])


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _infinite(value: float | None) -> float:
    return math.inf if value is None else value
