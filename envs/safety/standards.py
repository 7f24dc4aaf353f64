"""ISO/TS 15066 and ISO 13855 values and formulas used by the safety monitors.

Sources (see docs/safety.md): ISO/TS 15066:2016 Annex A (quasi-static force per body region,
transient contact at 2x except skull/forehead and face, effective spring constants and masses),
ISO 13855 (walking speed 1.6 m/s; 2.0 m/s for a hand approach within 0.5 m), ISO 10218-1:2011
5.5.3 (reduced speed 250 mm/s). All results are indicative simulation checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

BodyRegion = Literal[
    "skull_forehead",
    "face",
    "neck",
    "back_shoulders",
    "chest",
    "abdomen",
    "pelvis",
    "upper_arm_elbow",
    "lower_arm_wrist",
    "hands_fingers",
    "thighs_knees",
    "lower_legs",
]

REDUCED_SPEED_MPS = 0.25
"""ISO 10218-1:2011 5.5.3: TCP speed in collaborative operation at reduced speed."""
WALKING_SPEED_MPS = 1.6
"""ISO 13855: approach speed of a walking person."""
HAND_SPEED_MPS = 2.0
"""ISO 13855: approach speed of a hand within 0.5 m."""
TRANSIENT_FACTOR = 2.0
"""ISO/TS 15066 Annex A: a transient contact may reach 2x the quasi-static force limit."""


@dataclass(frozen=True)
class RegionLimit:
    """ISO/TS 15066 Annex A values of one body region.

    Attributes:
        quasi_static_n: Largest permissible quasi-static (clamping) force.
        transient_allowed: Whether a transient contact may exceed it (by `TRANSIENT_FACTOR`).
        spring_n_per_mm: Effective spring constant k of the region.
        mass_kg: Effective mass m_H of the human body region.
    """

    quasi_static_n: float
    transient_allowed: bool
    spring_n_per_mm: float
    mass_kg: float

    def force_limit(self, transient: bool) -> float:
        """The force limit of a quasi-static or a transient contact (N)."""
        factor = TRANSIENT_FACTOR if transient and self.transient_allowed else 1.0
        return self.quasi_static_n * factor


REGIONS: dict[BodyRegion, RegionLimit] = {
    "skull_forehead": RegionLimit(130.0, False, 150.0, 4.4),
    "face": RegionLimit(65.0, False, 75.0, 4.4),
    "neck": RegionLimit(150.0, True, 50.0, 1.2),
    "back_shoulders": RegionLimit(210.0, True, 35.0, 40.0),
    "chest": RegionLimit(140.0, True, 25.0, 40.0),
    "abdomen": RegionLimit(110.0, True, 10.0, 40.0),
    "pelvis": RegionLimit(180.0, True, 25.0, 40.0),
    "upper_arm_elbow": RegionLimit(150.0, True, 30.0, 3.0),
    "lower_arm_wrist": RegionLimit(160.0, True, 40.0, 2.0),
    "hands_fingers": RegionLimit(140.0, True, 75.0, 0.6),
    "thighs_knees": RegionLimit(220.0, True, 50.0, 75.0),
    "lower_legs": RegionLimit(130.0, True, 60.0, 75.0),
}
"""ISO/TS 15066 Annex A, Tables A.2 and A.3, per body region."""


def reduced_mass(human_kg: float, robot_kg: float) -> float:
    """The two-body reduced mass of a contact, mu = (1/m_H + 1/m_R)^-1 (kg)."""
    if human_kg <= 0 or robot_kg <= 0:
        raise ValueError(f"expected masses > 0, got m_H {human_kg} and m_R {robot_kg}")
    return 1.0 / (1.0 / human_kg + 1.0 / robot_kg)


def robot_effective_mass(robot_kg: float, payload_kg: float) -> float:
    """m_R = M/2 + payload: ISO/TS 15066's effective mass of a moving robot (kg)."""
    return robot_kg / 2.0 + payload_kg


def max_relative_speed(
    region: BodyRegion, robot_kg: float, payload_kg: float, transient: bool = True
) -> float:
    """Largest robot-human relative speed whose contact stays within the region's force limit.

    v = F / sqrt(mu k), with F the region's limit (transient or quasi-static), k its spring
    constant and mu the reduced mass of the region and the robot's effective mass (m/s).
    """
    limit = REGIONS[region]
    mu = reduced_mass(limit.mass_kg, robot_effective_mass(robot_kg, payload_kg))
    spring_n_per_m = limit.spring_n_per_mm * 1000.0
    return limit.force_limit(transient) / math.sqrt(mu * spring_n_per_m)


@dataclass(frozen=True)
class SeparationParams:
    """The terms of the protective separation distance (ISO/TS 15066 5.5.4).

    Attributes:
        human_speed_mps: v_h, the person's approach speed.
        reaction_time_s: T_r, the robot system's reaction time.
        stopping_time_s: T_s, the robot's stopping time.
        stopping_distance_m: S_s, the robot's stopping distance.
        intrusion_m: C, the intrusion distance (reach into the sensing field).
        sensor_uncertainty_m: Z_d, the position uncertainty of the person.
        robot_uncertainty_m: Z_r, the position uncertainty of the robot.
    """

    human_speed_mps: float = WALKING_SPEED_MPS
    reaction_time_s: float = 0.1
    stopping_time_s: float = 0.25
    stopping_distance_m: float = 0.08
    intrusion_m: float = 0.2
    sensor_uncertainty_m: float = 0.05
    robot_uncertainty_m: float = 0.002


def protective_separation(robot_speed_mps: float, params: SeparationParams) -> float:
    """The protective separation distance S_p (m).

    S_p = v_h (T_r + T_s) + v_r T_r + S_s + C + Z_d + Z_r, with v_r the robot's speed toward
    the person (here: its TCP speed, the conservative choice).
    """
    if robot_speed_mps < 0:
        raise ValueError(f"expected a robot speed >= 0, got {robot_speed_mps}")
    p = params
    return (
        p.human_speed_mps * (p.reaction_time_s + p.stopping_time_s)
        + robot_speed_mps * p.reaction_time_s
        + p.stopping_distance_m
        + p.intrusion_m
        + p.sensor_uncertainty_m
        + p.robot_uncertainty_m
    )
