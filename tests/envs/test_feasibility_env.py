"""The feasibility checks against the env itself: what they accept, the controller does.

For every bin a layout passes, the check names the pick point a straight carry starts from
(`Findings.carries`); driving the env's tool there and on to the bin's drop point with a plain
proportional controller must get it there. For a bin the check rejects because no carry clears
the robot's base, the same controller stalls on the way. The env is built from a `SiteSpec`
directly, so a rejected layout can be driven too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.conveyor_sort import ConveyorSortEnv
from envs.factory.feasibility import check_layout
from envs.factory.schema import SiteSpec
from envs.factory.workspace import carry_path
from envs.robots.reach import swing
from envs.sites import list_sites, load_site

ARRIVED_M = 0.015


def with_bin(spec: SiteSpec, station_id: str, x: float, y: float) -> SiteSpec:
    stations = tuple(
        s.model_copy(update={"x": x, "y": y}) if s.station_id == station_id else s
        for s in spec.stations
    )
    return spec.model_copy(update={"stations": stations})


def drive(env: ConveyorSortEnv, target: np.ndarray, steps: int, stop: bool = True) -> bool:
    """Steer the tool to ``target`` (suction off); whether it got there (and stopped, if
    ``stop``; else within 3 cm is enough, for a waypoint on the way).

    The robots of these sites stand at the origin facing +x: base frame = world frame.
    """
    action = np.zeros(4, dtype=np.float32)
    for _ in range(steps):
        observation, *_ = env.step(action)
        tool, velocity = observation["ee_pos"], observation["ee_vel"]
        distance = np.linalg.norm(tool - target)
        if not stop and distance < 0.03:
            return True
        if distance < ARRIVED_M and np.linalg.norm(velocity) < 0.05:
            return True
        action[:3] = np.clip(10.0 * (target - tool), -1.0, 1.0)
    return False


def carry(spec: SiteSpec, start: np.ndarray, bin_index: int) -> bool:
    """Swing the tool round the base to the pick point, then carry it to the bin.

    The swing is the one the reach probe assumes a policy makes (`envs.robots.reach.swing`:
    which way an arm reaches a point decides its configuration there, and so what it can do
    next); the carry follows `carry_path` (up, across, down), as the check does.
    """
    env = ConveyorSortEnv(site=spec)
    try:
        observation, _ = env.reset(seed=0)
        assert env.cell is not None
        assert not env.cell.arm.base_position.any() and env.cell.robot_yaw == 0.0
        hx, hy, hz = (float(v) for v in observation["ee_pos"])
        for waypoint in swing((hx, hy, hz), (start[0], start[1], start[2]))[:-1]:
            drive(env, np.array(waypoint), steps=20, stop=False)
        assert drive(env, start, steps=150), f"the tool never reached the pick point {start}"
        drop = env.cell.drop_point(bin_index)
        for waypoint in carry_path(start, drop)[1:-1]:
            drive(env, waypoint, steps=20, stop=False)
        return drive(env, drop, steps=150)
    finally:
        env.close()


@pytest.mark.parametrize("site", list_sites())
def test_every_carry_the_check_finds_at_a_shipped_site_is_driven(site: str) -> None:
    spec = load_site(site)
    findings = check_layout(spec)
    assert not findings.errors
    for index, station in enumerate(spec.bins):
        start = np.array(findings.carries[station.station_id])
        assert carry(spec, start, index), f"{site}: no carry from {start} to {station.station_id}"


@pytest.mark.parametrize(
    ("x", "y", "feasible"),
    [
        (0.0, -0.35, False),  # straight across the robot from the belt
        (-0.25, -0.45, False),  # behind the panda, beyond its first joint's reach
        (0.13, -0.48, True),
        (0.55, 0.05, True),
    ],
)
def test_a_bin_the_check_accepts_is_reached_and_one_it_rejects_is_not(
    x: float, y: float, feasible: bool
) -> None:
    spec = with_bin(load_site("kr-changwon"), "bin1", x, y)
    findings = check_layout(spec)
    rejected = [e for e in findings.errors if "station bin1" in e.location]
    assert bool(rejected) != feasible, "\n".join(map(str, findings.errors))
    if feasible:
        assert carry(spec, np.array(findings.carries["bin1"]), 0)
    else:  # the nearest point of the pick window, where a carry would start
        assert "no straight tool path" in rejected[0].value
        nearest = np.array([x, 0.42, 0.116])
        assert not carry(spec, nearest, 0)


HOME_SITES = {"panda": "kr-changwon", "kuka_iiwa": "jp-nagoya", "xarm6": "us-austin"}


@settings(max_examples=max(1, round(12 * settings().max_examples / 100)))
@given(
    st.sampled_from(sorted(HOME_SITES)),
    st.floats(-math.pi, math.pi),
    st.floats(0.2, 0.85),
)
def test_a_bin_anywhere_the_check_accepts_is_carried_to(
    model: str, angle: float, radius: float
) -> None:
    """bin1 of each robot's home site moved anywhere around it: the check's carry works."""
    spec = with_bin(load_site(HOME_SITES[model]), "bin1", radius * math.cos(angle),
                    radius * math.sin(angle))  # fmt: skip
    findings = check_layout(spec)
    if findings.errors:
        return  # rejected (the test above shows rejected carries stall)
    assert carry(spec, np.array(findings.carries["bin1"]), 0)
