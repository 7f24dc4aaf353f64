"""A person walking into the cell: schedule, speed-and-separation, reduced speed, body-region
contact limits (tests/envs/test_contact_force.py), protective stops, snapshots."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envs.conveyor_sort import ConveyorSortEnv
from envs.errors import FactoryDataError
from envs.safety.coworker import PARKED, Visit
from envs.safety.standards import SeparationParams, protective_separation
from envs.sites import SITE_DATA, load_site

WALKWAY = "walk1,walkway,,-1.35,-0.1,0.005,,,0.0,1.5,0.6,0.01,,,\n"
PERSON = (
    "coworkers:\n- name: restocker\n  walkway: walk1\n  speed_mps: 1.0\n"
    "  first_arrival_s: 0.5\n  dwell_s: 2.0\n"
)
SHIPPED = "  jurisdiction: KR\n"  # kr-changwon's own


def bundle(tmp_path: Path, jurisdiction: str | None, person: str = PERSON) -> Path:
    folder = tmp_path / f"site-{jurisdiction}"
    shutil.copytree(SITE_DATA / "kr-changwon", folder)
    stations = folder / "stations.csv"
    stations.write_text(stations.read_text() + WALKWAY)
    site_yaml = folder / "site.yaml"
    text = site_yaml.read_text()
    assert SHIPPED in text
    text = text.replace(SHIPPED, f"  jurisdiction: {jurisdiction}\n" if jurisdiction else "")
    site_yaml.write_text(text + person)
    return folder


def run(env: ConveyorSortEnv, steps: int, action: np.ndarray) -> list[dict[str, Any]]:
    infos = []
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
    return infos


def test_the_person_follows_the_walkway_at_their_speed(tmp_path: Path) -> None:
    env = ConveyorSortEnv(load_site(bundle(tmp_path, "US")))
    env.reset(seed=0)
    monitor = env.coworkers
    assert monitor is not None
    person = monitor.people[0]
    assert person.visits == [Visit(0.5, 1.5, 2.0)]  # 1.5 m at 1 m/s, one visit (no gaps)
    assert env.sim.base_pose(person.body)[0] == pytest.approx(PARKED)
    dt = env.control_dt
    for _ in range(int(round(1.0 / dt))):  # to t = 1.0 s: 0.5 s into the walk
        env.step(np.zeros(4, dtype=np.float32))
    x, y, _ = env.sim.base_pose(person.body)[0]
    assert (x, y) == pytest.approx((-2.1 + 0.5, -0.1), abs=1e-6)
    env.close()


def test_walking_into_the_robot_triggers_ssm_when_the_separation_falls_below_s_p(
    tmp_path: Path,
) -> None:
    env = ConveyorSortEnv(load_site(bundle(tmp_path, "US")))  # US: record only, no stop
    env.reset(seed=0)
    monitor = env.coworkers
    assert monitor is not None
    person, still = monitor.people[0], np.zeros(4, dtype=np.float32)
    separations, ssm = [], []
    for _ in range(int(round(3.0 / env.control_dt))):
        _, _, _, _, info = env.step(still)
        points = env.sim.closest_points(env.cell.arm.body, person.body, 3.0)  # type: ignore[union-attr]
        separations.append(min((p[8] for p in points), default=math.inf))
        ssm.append("ssm" in info["violations"])
        speeds = info["tcp_speed_mps"]
    first = ssm.index(True)
    needed = protective_separation(speeds, SeparationParams())
    assert separations[first] < needed <= separations[first - 1] + 1e-9
    assert all(s >= needed - 0.05 for s in separations[: first - 1])
    summary = env.episode_summary()
    assert summary["violations_ssm"] == sum(ssm) > 0 and summary["safety_profile"] == "US"
    assert summary["min_separation_m"] == pytest.approx(min(separations), abs=1e-9)
    assert summary["protective_stops"] == 0 and summary["protective_stop_time_s"] == 0.0
    env.close()


def test_a_protective_stop_holds_the_arm_and_costs_time(tmp_path: Path) -> None:
    env = ConveyorSortEnv(load_site(bundle(tmp_path, "KR")))  # KR: protective stop
    env.reset(seed=0)
    forward = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    infos = run(env, int(round(3.0 / env.control_dt)), forward)
    stopped = [i for i, info in enumerate(infos) if "ssm" in info["violations"]]
    assert stopped
    summary = env.episode_summary()
    assert summary["protective_stops"] >= 1 and summary["protective_stop_time_s"] > 0
    # While stopped the arm holds: its speed falls to (almost) nothing.
    held = [infos[i + 3]["tcp_speed_mps"] for i in stopped[:1]]
    assert held[0] < 0.05
    env.close()


def test_the_reduced_speed_applies_inside_the_collaborative_zone(tmp_path: Path) -> None:
    env = ConveyorSortEnv(load_site(bundle(tmp_path, "US")))
    env.reset(seed=0)
    infos, steps_per_swing = [], int(round(0.4 / env.control_dt))
    for swing in range(int(round(2.8 / 0.4))):  # side to side, fast, as the person comes in
        sign = 1.0 if swing % 2 == 0 else -1.0
        infos += run(env, steps_per_swing, np.array([0.0, sign, 0.0, 0.0], dtype=np.float32))
    person = env.coworkers.people[0]  # type: ignore[union-attr]
    flagged = [i for i in infos if "reduced_speed" in i["violations"]]
    assert flagged and all(i["tcp_speed_mps"] > 0.25 for i in flagged)
    # before the person is 1.5 m from the base (x > -1.5, at t > 1.1 s) nothing is flagged
    early = infos[: int(1.1 / env.control_dt) - 1]
    assert any(i["tcp_speed_mps"] > 0.25 for i in early)
    assert not any("reduced_speed" in i["violations"] for i in early)
    assert person.spec.collaborative_zone_m == 1.5
    env.close()


def test_snapshots_restore_the_persons_visit_mid_walk(tmp_path: Path) -> None:
    site = load_site(bundle(tmp_path, "KR", PERSON + "  mean_gap_s: 4.0\n"))
    action = np.array([0.3, -0.2, 0.0, 0.0], dtype=np.float32)
    env = ConveyorSortEnv(site)
    env.reset(seed=3)
    run(env, 40, action)
    blob = env.save_snapshot()
    after = [o for o in (env.step(action)[0] for _ in range(60))]
    summary = env.episode_summary()
    other = ConveyorSortEnv(site)
    other.reset(seed=3)
    other.load_snapshot(blob)
    again = [o for o in (other.step(action)[0] for _ in range(60))]
    for a, b in zip(after, again, strict=True):
        for key in a:
            assert a[key].tobytes() == b[key].tobytes(), key
    assert other.episode_summary() == summary
    env.close()
    other.close()


def test_a_coworker_on_an_unknown_walkway_is_a_data_error(tmp_path: Path) -> None:
    folder = bundle(tmp_path, None, PERSON.replace("walkway: walk1", "walkway: conv1"))
    with pytest.raises(FactoryDataError, match=r"coworkers\[0\]\.walkway.*is a conveyor"):
        load_site(folder)
