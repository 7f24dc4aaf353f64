"""The feasibility checks against the env itself: what they accept, the controller does.

For every bin a layout passes, the check names the pick point a straight carry starts from
(`Findings.carries`); driving the env's tool there and on to the bin's drop point with a plain
proportional controller must get it there. For a bin the check rejects because no carry clears
the robot's base, the same controller stalls on the way. The env is built from a `SiteSpec`
directly, so a rejected layout can be driven too.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.conveyor_sort import ConveyorSortEnv
from envs.factory.feasibility import check_layout
from envs.factory.schema import SiteSpec
from envs.sites import list_sites, load_site

ARRIVED_M = 0.015


def with_bin(spec: SiteSpec, station_id: str, x: float, y: float) -> SiteSpec:
    stations = tuple(
        s.model_copy(update={"x": x, "y": y}) if s.station_id == station_id else s
        for s in spec.stations
    )
    return spec.model_copy(update={"stations": stations})


def drive(env: ConveyorSortEnv, target: np.ndarray, steps: int) -> bool:
    """Steer the tool to ``target`` (suction off); whether it got there and stopped.

    The robots of these sites stand at the origin facing +x: base frame = world frame.
    """
    action = np.zeros(4, dtype=np.float32)
    for _ in range(steps):
        observation, *_ = env.step(action)
        tool, velocity = observation["ee_pos"], observation["ee_vel"]
        if np.linalg.norm(tool - target) < ARRIVED_M and np.linalg.norm(velocity) < 0.05:
            return True
        action[:3] = np.clip(10.0 * (target - tool), -1.0, 1.0)
    return False


def carry(spec: SiteSpec, start: np.ndarray, bin_index: int) -> bool:
    env = ConveyorSortEnv(site=spec)
    try:
        env.reset(seed=0)
        assert env.cell is not None
        assert not env.cell.arm.base_position.any() and env.cell.robot_yaw == 0.0
        above = start + np.array([0.0, 0.0, 0.05])  # above the parts riding past
        assert drive(env, above, steps=150), f"the tool never reached the pick point {above}"
        return drive(env, env.cell.drop_point(bin_index), steps=150)
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
