"""The peg-in-hole task: pick a peg from its nest and insert it into the hole fixture's hole.

Scene (from the site's ``peg-in-hole`` section of site.yaml, `PegInHoleSection`): the hole is
four walls (and a chamfer, `envs.cells.hole`) on the top face of the ``hole_station`` fixture;
the peg, a box or cylinder primitive of ``peg_size_m``, stands upright at the top-face centre of the
``peg_station`` fixture, turned to the hole's yaw (the tool cannot turn a part; a robot whose
tool yaws on the way turns a box peg with it: ``peg_shape: cylinder`` is a round pin). With
``hole_pose_noise_m`` the hole moves by up to that much in x and y from the fixture's centre
each episode (a re-clamped fixture); with ``peg_pose_noise_m`` the peg stands up to that far in
x and y from the nest's centre (the play of the nest's pocket). Both are drawn from the
episode's seed, the hole's first.

Insertion depth: the hole's mouth height minus the peg's bottom-face centre height (m), so a
peg standing on the hole's floor is inserted ``hole_depth_m``. The peg is *inserted* when its
bottom centre is inside the gap (each axis of the hole frame within the clearance plus 1 mm),
its depth is at least 90% of the hole depth and its axis is within ``upright_tolerance_rad`` of
vertical. It is *assembled* when it is inserted, off the cup and at rest (speed below
1 cm/s): the episode then ends in success. It is *dropped* when it is off the cup, outside the
hole, and below both fixtures' tops or lying over (tilt above 45 degrees): the episode ends in
failure.

The wrist force is the sum of the contact forces (normal and friction) on the held peg from
every body but the robot, as a force/torque sensor between flange and cup would read it (no
torque: the cup is rigid); zero when nothing is held. A jam is a stall of at least 0.5 s with
the peg held, pushed with at least 5 N (FORGE's contact threshold), not yet inserted and not
going down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.cells.cell import Cell
from envs.cells.gripper import ENGAGED_EVENTS
from envs.cells.hole import HoleShape, build_hole, place_hole
from envs.factory.schema import Part, SiteSpec
from envs.factory.task_sections import PegInHoleSection
from envs.metrics import EpisodeMetrics
from envs.observation import BaseFrame
from envs.sensing import PartSensor
from envs.tasks.base import Task

__all__ = ["PEG_FIELDS", "PegInHole"]

PEG_FIELDS: dict[str, tuple[int, float, float]] = {
    "peg_pos": (3, -3.0, 3.0),
    "peg_vel": (3, -5.0, 5.0),
    "peg_axis": (3, -1.0, 1.0),
    "peg_size": (3, 0.0, 2.0),
    "hole_pos": (3, -3.0, 3.0),
    "hole_size": (3, 0.0, 2.0),
    "wrist_force": (3, -500.0, 500.0),
}
"""The task's observation fields (see `envs.peg_in_hole` for their meaning)."""

INSERTED_SHARE = 0.9  # of the hole depth
IN_GAP_MARGIN_M = 0.001  # beyond the clearance, per axis of the hole frame
AT_REST_MPS = 0.01
FALLEN_TILT_RAD = math.pi / 4.0
JAM_FORCE_N, JAM_STALL_S, JAM_SINK_MPS = 5.0, 0.5, 0.002
REWARD_GRASP, REWARD_ASSEMBLED, REWARD_DROPPED, REWARD_VIOLATION = 1.0, 5.0, -3.0, -0.1
_PEG_COLOR = (0.78, 0.63, 0.25, 1.0)


class PegInHole(Task):
    """The peg-in-hole task of `Testbed/PegInHole-v0` (module docstring).

    Args:
        site: The site's validated factory data.
        section: The site's ``peg-in-hole`` section (or one with overrides).

    Raises:
        ValueError: If a named station is missing or not a fixture, or the hole or the peg
            does not fit on its fixture's top face.
    """

    needs = ("fixture",)
    observation_fields = PEG_FIELDS

    def __init__(self, site: SiteSpec, section: PegInHoleSection) -> None:
        super().__init__(site)
        self.section = s = section
        fixtures = sorted(st.station_id for st in site.stations_of("fixture"))
        for role, sid in (("hole_station", s.hole_station), ("peg_station", s.peg_station)):
            if sid not in fixtures:
                raise ValueError(
                    f"site {site.site_id!r}: peg-in-hole {role} {sid!r} is not a fixture station "
                    f"of stations.csv (fixtures: {fixtures})"
                )
        px, py, pz = s.peg_size_m
        gap = (px + 2.0 * s.clearance_m, py + 2.0 * s.clearance_m)
        self.shape = HoleShape(gap, s.hole_depth_m, s.chamfer_m, s.wall_m)
        self.peg = Part(
            part_id="PEG", name="peg", shape=s.peg_shape, size_x=px, size_y=py, size_z=pz,
            mass_kg=s.peg_mass_kg, friction=s.peg_friction, color=_PEG_COLOR,
        )  # fmt: skip
        hole = site.station(s.hole_station)
        nest = site.station(s.peg_station)
        outer = max(gap) + 2.0 * (s.wall_m + s.chamfer_m + 2.0 * s.hole_pose_noise_m)
        footprint = max(px, py) + 2.0 * s.peg_pose_noise_m
        if outer > min(hole.size_x, hole.size_y) or footprint > min(nest.size_x, nest.size_y):
            raise ValueError(
                f"site {site.site_id!r}: the hole ({outer:.3f} m across with its walls and pose "
                f"noise) or the peg ({footprint:.3f} m across with its pose noise) does not fit "
                f"on its fixture's top face"
            )
        hole_pos, hole_rpy = site.world_pose(s.hole_station)
        nest_pos, _ = site.world_pose(s.peg_station)
        self.hole_yaw = hole_rpy[2]
        self.floor0 = np.array([hole_pos[0], hole_pos[1], hole_pos[2] + hole.size_z / 2.0])
        self.nest_top = np.array([nest_pos[0], nest_pos[1], nest_pos[2] + nest.size_z / 2.0])
        self._lowest_top = min(self.floor0[2], self.nest_top[2])
        self.hole_sensor = PartSensor(site.site.sensors)
        self._hole_bodies: tuple[int, ...] = ()
        self.peg_body = -1
        self._start_tracking(np.zeros(2))

    def _start_tracking(self, offset: np.ndarray) -> None:
        """The episode's hole offset and fresh counters."""
        self.offset = np.asarray(offset, dtype=np.float64)
        cos, sin = math.cos(self.hole_yaw), math.sin(self.hole_yaw)
        dx, dy = float(self.offset[0]), float(self.offset[1])
        self.floor = self.floor0 + np.array([cos * dx - sin * dy, sin * dx + cos * dy, 0.0])
        self.mouth = self.floor + np.array([0.0, 0.0, self.section.hole_depth_m])
        self.track: dict[str, Any] = {
            "grasped_at_s": None, "inserted_at_s": None, "assembled": False, "dropped": False,
            "dropped_step": None, "inserted_once": False, "max_depth_m": 0.0,
            "peak_force_n": 0.0, "force_sum_n": 0.0, "force_steps": 0, "force_violations": 0,
            "jams": 0, "stall_s": 0.0, "last_s": 0.0, "grasp_events": 0,
        }  # fmt: skip
        self.force = np.zeros(3)
        self.inserted = False

    def time_limit_s(self) -> float:
        """The section's ``time_limit_s``."""
        return self.section.time_limit_s

    def build(self, cell: Cell) -> None:
        """The peg (parked) and the hole at the fixture's centre, made once with the cell."""
        super().build(cell)
        self.peg_body = cell.create_part(self.peg, 0)
        floor = (float(self.floor0[0]), float(self.floor0[1]), float(self.floor0[2]))
        self._hole_bodies = build_hole(cell.sim, self.shape, floor, self.hole_yaw)

    def reset(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the hole's offset and the peg's place on its nest; stand the peg there."""
        cell = self.cell
        assert cell is not None
        noise = self.section.hole_pose_noise_m
        offset = rng.uniform(-noise, noise, 2) if noise > 0 else np.zeros(2)
        self._start_tracking(offset)
        if noise > 0:
            floor = (float(self.floor[0]), float(self.floor[1]), float(self.floor[2]))
            place_hole(cell.sim, self._hole_bodies, self.shape, floor, self.hole_yaw)
        play = self.section.peg_pose_noise_m
        # Drawn only where the site has play, so sites without it keep their episodes.
        peg_offset = rng.uniform(-play, play, 2) if play > 0 else np.zeros(2)
        lift = self.peg.size_z / 2.0 + 0.0005
        start = self.nest_top + np.array([peg_offset[0], peg_offset[1], lift])
        upright = cell.sim.quat_from_euler((0.0, 0.0, self.hole_yaw))
        cell.sim.reset_base(self.peg_body, tuple(map(float, start)), upright)  # type: ignore[arg-type]
        self.hole_sensor.reset()
        return {
            "hole_offset_m": [float(v) for v in self.offset],
            "peg_offset_m": [float(v) for v in peg_offset],
        }

    # ------------------------------------------------------------------ per step

    def after_physics(self, tool: np.ndarray) -> None:
        """Read the peg's pose; its axis, tilt, bottom centre and insertion depth."""
        assert self.cell is not None
        sim = self.cell.sim
        position, orientation = sim.base_pose(self.peg_body)
        velocity, _ = sim.base_velocity(self.peg_body)
        self._set_pose(np.asarray(position), np.asarray(orientation), np.asarray(velocity))
        self.tool_to_top = float(np.linalg.norm(tool - self.top))

    def _set_pose(self, position: np.ndarray, quat: np.ndarray, velocity: np.ndarray) -> None:
        self.peg_pos = position.astype(np.float64)
        self.peg_quat = quat.astype(np.float64)
        self.peg_vel = velocity.astype(np.float64)
        x, y, z, w = self.peg_quat
        self.axis = np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])
        self.tilt = math.acos(min(1.0, max(-1.0, float(self.axis[2]))))
        half = self.peg.size_z / 2.0
        self.bottom = self.peg_pos - half * self.axis
        self.top = self.peg_pos + half * self.axis
        self.depth_m = float(self.mouth[2] - self.bottom[2])
        rx, ry = self.bottom[0] - self.floor[0], self.bottom[1] - self.floor[1]
        cos, sin = math.cos(-self.hole_yaw), math.sin(-self.hole_yaw)
        limit = self.section.clearance_m + IN_GAP_MARGIN_M
        self.in_gap = bool(abs(cos * rx - sin * ry) <= limit and abs(sin * rx + cos * ry) <= limit)
        self.at_rest = float(np.linalg.norm(self.peg_vel)) < AT_REST_MPS
        self.inserted = bool(
            self.in_gap
            and self.depth_m >= INSERTED_SHARE * self.section.hole_depth_m
            and self.tilt <= self.section.upright_tolerance_rad
        )

    @property
    def inserted_m(self) -> float:
        """How deep the peg is in the hole (m): its depth while inside the gap, else 0."""
        return max(self.depth_m, 0.0) if self.in_gap else 0.0

    def positions(self) -> Mapping[int, np.ndarray]:
        """The peg's position."""
        return {self.peg_body: self.peg_pos}

    def graspable(self) -> dict[int, Part]:
        """The peg."""
        return {self.peg_body: self.peg}

    def update(
        self,
        events: list[str],
        held: int | None,
        step: int,
        metrics: EpisodeMetrics,
        sim_time_s: float,
    ) -> list[str]:
        """Wrist force, grasp, insertion, jams, drop and assembly; returns the task's events."""
        t, mine = self.track, []
        holding = held == self.peg_body
        self.force = self._wrist_force() if holding else np.zeros(3)
        magnitude = float(np.linalg.norm(self.force))
        t["peak_force_n"] = max(t["peak_force_n"], magnitude)
        if magnitude > 0.0:
            t["force_sum_n"] += magnitude
            t["force_steps"] += 1
        if magnitude > self.site.site.safety.max_contact_force_n:
            t["force_violations"] += 1
        if any(event in ENGAGED_EVENTS for event in events):
            t["grasp_events"] += 1
            metrics.grasps += 1
            if t["grasped_at_s"] is None:
                t["grasped_at_s"] = sim_time_s
            mine.append("grasp:peg")
        if "grip_lost" in events:
            metrics.grip_losses += 1
        if self.in_gap:
            t["max_depth_m"] = max(t["max_depth_m"], self.depth_m)
        if self.inserted and not t["inserted_once"]:
            t["inserted_once"], t["inserted_at_s"] = True, sim_time_s
            mine.append("inserted:peg")
        self._track_stall(holding, magnitude, sim_time_s, mine)
        t["assembled"] = self.inserted and not holding and self.at_rest
        if t["assembled"]:
            metrics.sorted_times_s.append(sim_time_s)  # the part count and cycle time
            mine.append("assembled:peg")
        fallen = self.bottom[2] < self._lowest_top - 0.01 or self.tilt > FALLEN_TILT_RAD
        if not holding and not self.in_gap and fallen and not t["dropped"]:
            t["dropped"], t["dropped_step"] = True, step
            mine.append("dropped:peg")
        return mine

    def _track_stall(self, holding: bool, force: float, now_s: float, events: list[str]) -> None:
        t = self.track
        sinking = float(self.peg_vel[2]) < -JAM_SINK_MPS
        if holding and force >= JAM_FORCE_N and not self.inserted and not sinking:
            before = t["stall_s"]
            t["stall_s"] = before + (now_s - t["last_s"])
            if before < JAM_STALL_S <= t["stall_s"]:
                t["jams"] += 1
                events.append("jam:peg")
        else:
            t["stall_s"] = 0.0
        t["last_s"] = now_s

    def _wrist_force(self) -> np.ndarray:
        """Sum of contact forces on the peg from every body but the robot (world frame, N)."""
        assert self.cell is not None
        robot = self.cell.arm.body
        total = [0.0, 0.0, 0.0]
        for p in self.cell.sim.contacts(self.peg_body):
            if p[2] == robot:
                continue
            normal, f1, d1, f2, d2 = p[7], p[10], p[11], p[12], p[13]
            for axis in range(3):
                total[axis] += p[9] * normal[axis] + f1 * d1[axis] + f2 * d2[axis]
        return np.array(total)

    def reward(
        self, events: list[str], violations: list[str], tool: np.ndarray, held: int | None
    ) -> float:
        """Distance shaping, event terms and violations (see `envs.peg_in_hole`)."""
        reward = -float(np.linalg.norm(self.bottom - self.floor))
        if held != self.peg_body and not self.inserted:
            reward -= self.tool_to_top
        count = len(violations) + int(float(np.linalg.norm(self.force)) > self._force_limit)
        reward += REWARD_VIOLATION * count
        for event in events:
            kind = event.split(":", 1)[0]
            if kind == "grasp" and self.track["grasp_events"] == 1:
                reward += REWARD_GRASP
            elif kind == "assembled":
                reward += REWARD_ASSEMBLED
            elif kind == "dropped":
                reward += REWARD_DROPPED
        return reward

    @property
    def _force_limit(self) -> float:
        return self.site.site.safety.max_contact_force_n

    def terminated(self, held: int | None) -> bool:
        """Assembled (success) or dropped (failure)."""
        return bool(self.track["assembled"] or self.track["dropped"])

    def observe(
        self, sensor: PartSensor, rng: np.random.Generator, frame: BaseFrame
    ) -> Sequence[float]:
        """Peg and hole as the site's sensors see them; the peg's axis, sizes and wrist force."""
        pos, vel = sensor.read(self.peg_pos, self.peg_vel, rng)
        hole, _ = self.hole_sensor.read(self.mouth, np.zeros(3), rng)
        gap = self.shape.gap
        return [
            *frame.point(pos),
            *frame.vector(vel),
            *frame.vector(self.axis),
            *self.peg.size,
            *frame.point(hole),
            gap[0],
            gap[1],
            self.section.hole_depth_m,
            *frame.vector(self.force),
        ]

    def info(self, events: list[str], metrics: EpisodeMetrics) -> dict[str, Any]:
        """``events``, ``insertion_depth_m`` and ``wrist_force_n`` (magnitude)."""
        return {
            "events": events,
            "insertion_depth_m": self.inserted_m,
            "wrist_force_n": float(np.linalg.norm(self.force)),
        }

    # ------------------------------------------------------------------ episode end

    def summary(
        self, metrics: EpisodeMetrics, sim_time_s: float, steps: int, time_limit_reached: bool
    ) -> dict[str, Any]:
        """`EpisodeMetrics.summary` with the insertion's figures and the outcome.

        ``success_once``: the peg was inserted at some step; ``success_at_end``: it is inserted
        and at rest at the last step (assembled, or held still in the hole at the time limit).
        """
        t = self.track
        at_end = self.inserted and self.at_rest
        summary: dict[str, Any] = metrics.summary(1, t["inserted_once"], at_end, sim_time_s)
        violations = int(t["force_violations"])
        total = sum(metrics.violations.values()) + violations
        summary.update(
            {
                "insertion_time_s": _or_nan(t["inserted_at_s"]),
                "grasp_time_s": _or_nan(t["grasped_at_s"]),
                "insertion_depth_m": self.inserted_m,
                "max_insertion_depth_m": t["max_depth_m"],
                "hole_depth_m": self.section.hole_depth_m,
                "clearance_m": self.section.clearance_m,
                "final_tilt_rad": self.tilt,
                "peak_wrist_force_n": t["peak_force_n"],
                "mean_wrist_force_n": (
                    t["force_sum_n"] / t["force_steps"] if t["force_steps"] else math.nan
                ),
                "jams": int(t["jams"]),
                "peg_dropped": bool(t["dropped"]),
                "violations_wrist_force": violations,
                "violations_per_1000_steps": 1000.0 * total / max(metrics.steps, 1),
                "outcome": self._outcome(steps, time_limit_reached),
            }
        )
        return summary

    def _outcome(self, steps: int, time_limit_reached: bool) -> str:
        """``success``, or the first of: dropped, jam, depth reached, never picked (docs)."""
        t = self.track
        if t["assembled"] or (self.inserted and self.at_rest):
            return "success"
        if t["dropped"]:
            return f"dropped peg at step {t['dropped_step']}"
        limit = "time limit" if time_limit_reached else f"step cap at step {steps}"
        depth = f"{1000 * max(self.depth_m, 0.0):.1f} of {1000 * self.section.hole_depth_m:.0f} mm"
        if t["grasped_at_s"] is None:
            return f"{limit}: peg not picked"
        if self.inserted:
            return f"{limit}: peg inserted {depth} but not at rest"
        if self.in_gap and self.tilt > self.section.upright_tolerance_rad:
            return f"{limit}: peg tilted {math.degrees(self.tilt):.0f} deg at {depth}"
        if self.in_gap and t["jams"]:
            return f"jam: peg stuck at {depth} ({t['jams']} jams, peak {t['peak_force_n']:.0f} N)"
        if self.in_gap:
            return f"{limit}: peg inserted {depth}"
        miss = 1000.0 * math.hypot(*(self.bottom[:2] - self.floor[:2]))
        return f"{limit}: peg not in the hole ({miss:.0f} mm off its axis)"

    # ------------------------------------------------------------------ snapshots

    def state(self) -> dict[str, Any]:
        """What the task keeps, for snapshots.

        ``peg`` (the counters, JSON), ``peg_pose`` (rows: position, velocity, quaternion, the
        hole's offset), ``peg_force`` (the wrist force) and the hole sensor's history
        (``hole_sensor_*``).
        """
        pose = np.zeros((4, 4), dtype=np.float64)
        pose[0, :3], pose[1, :3], pose[2] = self.peg_pos, self.peg_vel, self.peg_quat
        pose[3, :2] = self.offset
        hole = {f"hole_{k}": v for k, v in self.hole_sensor.state().items()}
        return {"peg": dict(self.track), "peg_pose": pose, "peg_force": self.force.copy(), **hole}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode (ValueError if the hole was elsewhere)."""
        pose = np.asarray(state["peg_pose"], dtype=np.float64)
        if not np.array_equal(pose[3, :2], self.offset):
            raise ValueError(
                f"the env's hole offset {self.offset.tolist()} differs from the saved "
                f"{pose[3, :2].tolist()}; reset it with the episode's seed first"
            )
        self.track = dict(state["peg"])
        self.force = np.array(state["peg_force"], dtype=np.float64)
        self._set_pose(pose[0, :3].copy(), pose[2].copy(), pose[1, :3].copy())
        self.hole_sensor.load_state({k[len("hole_") :]: v for k, v in state.items()
                                     if k.startswith("hole_sensor_")})  # fmt: skip


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
