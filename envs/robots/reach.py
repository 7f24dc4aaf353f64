"""Reach probes: how close a robot model's controller can put its tool (pointing down).

A probe builds one robot model in a DIRECT `Sim` of its own (0.1-0.5 s, once per model and
process), base at the origin with yaw 0, and answers two questions, in the robot base frame:

- `ReachProbe.residual`: how close the controller's own IK (`CartesianArm.place_tool`: the
  model's null-space settings, joints held to their limits) gets the tool to a point, solving
  from the ready pose. A few rounds are tried, each from the joints the last one reached, as
  successive control steps would (the KUKA's IK alternates between a solution and a miss); a
  point missed by more than a few millimetres is tried again after a `swing` to it about the
  base, as a policy would turn to it.
- `ReachProbe.follow`: how closely the arm follows a path, step by step from the joints it has
  (so a joint limit met on the way shows).

Answers are cached per point and per path (to the millimetre), so checking many bundles with
one cell's geometry stays cheap: about 0.4-3 ms a new point.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence

from envs.factory.schema import ControllerSpec
from envs.robots.arm import CartesianArm
from envs.robots.models import ROBOT_MODELS, RobotModelInfo
from envs.sim import Sim, Vec3

_ROUNDS = 6
_FOLLOW_ROUNDS = 6  # per point of a followed path
_LEAD_M = 0.05  # arm._TARGET_LEAD_M: how far a command may lead the tool, per axis
_CONVERGED_M = 0.001  # a round this close ends the search
_ARC_STEP_M = 0.1  # waypoint spacing of the swing (5 cm found the same answers, slower)
_SWING_ABOVE_M = 0.004  # a direct miss by less is good enough
_STALLED_M = 0.0002  # a round that gains less ends the search
_CACHE_LIMIT = 200_000
_PROBES: dict[tuple[str, int], ReachProbe] = {}
_PROBES_LOCK = threading.Lock()


class ReachProbe:
    """One robot model in a private DIRECT simulation, for IK reach queries.

    Args:
        model: Key of `ROBOT_MODELS` (``panda``, ``kuka_iiwa``, ``xarm6``).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.info: RobotModelInfo = ROBOT_MODELS[model]
        self._sim = Sim(1.0 / 240.0, (0.0, 0.0, -9.81))
        self._arm = CartesianArm(
            self._sim, model, (0.0, 0.0, 0.0), 0.0, ControllerSpec(), workspace_min_z=-100.0
        )
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int, int], float] = {}
        self._paths: dict[tuple[tuple[int, int, int], ...], tuple[float, ...]] = {}

    def residual(self, point: Vec3) -> float:
        """Distance (m) between a point (robot base frame) and the best tool position IK finds.

        Args:
            point: Target of the tool centre point, base frame (x forward, z up).

        Returns:
            The smallest tool-to-point distance over the IK rounds tried from the ready pose.
        """
        key = (round(point[0] * 1000), round(point[1] * 1000), round(point[2] * 1000))
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = self._solve((key[0] / 1e3, key[1] / 1e3, key[2] / 1e3))
                if len(self._cache) > _CACHE_LIMIT:
                    self._cache.clear()
            return cached

    def follow(self, points: Sequence[Vec3]) -> tuple[float, ...]:
        """How close the tool follows a path (base frame) the way the controller would.

        The tool swings to the first point from the ready pose (`swing`, as a policy that
        turns to the belt would); each next point is solved from the joints the last one left,
        as successive control steps solve, with the joints held to their limits. So a path the
        wrist or the base cannot turn through shows, though each of its points may be in reach
        on its own: the arm keeps the configuration it arrived in.

        Returns:
            The distance between the tool and each point of the path.
        """
        key = tuple((round(p[0] * 1000), round(p[1] * 1000), round(p[2] * 1000)) for p in points)
        with self._lock:
            cached = self._paths.get(key)
            if cached is None:
                targets: list[Vec3] = [(x / 1000, y / 1000, z / 1000) for x, y, z in key]
                for waypoint in self._arc(targets[0]):
                    self._arm.place_tool(waypoint)
                cached = tuple(self._steps(target) for target in targets[:-1])
                cached += (self._steps(targets[-1], 4 * _FOLLOW_ROUNDS),)  # time to catch up
                if len(self._paths) >= _CACHE_LIMIT // 10:
                    self._paths.clear()
                self._paths[key] = cached
            return cached

    def _solve(self, target: Vec3) -> float:
        best = self._rounds(target, reset=True)
        if best > _SWING_ABOVE_M:  # a long swing? go there as a policy would
            for waypoint in self._arc(target):
                self._arm.place_tool(waypoint)
            best = min(best, self._rounds(target, reset=False))
        return best

    def _steps(self, target: Vec3, rounds: int = _FOLLOW_ROUNDS) -> float:
        """IK steps towards ``target`` like control steps, going on through worse poses.

        Each commands a point at most `_LEAD_M` ahead of the tool on every axis (as
        `CartesianArm.command` does). Leaves the arm in the best pose found; returns its miss.
        """
        tool = self._arm.tool_state()[0]
        best, best_angles = math.dist(tool, target), None
        for _ in range(rounds):
            lead = [min(max(g - t, -_LEAD_M), _LEAD_M) for t, g in zip(tool, target, strict=True)]
            command = (tool[0] + lead[0], tool[1] + lead[1], tool[2] + lead[2])
            tool, angles = self._arm.place_tool(command)
            miss = math.dist(tool, target)
            if miss < best:
                best, best_angles = miss, angles
                if miss <= _CONVERGED_M:
                    break
        if best_angles is not None:
            self._arm.place_joints(best_angles)
        return best

    def _rounds(self, target: Vec3, reset: bool) -> float:
        """IK rounds towards ``target``; leaves the arm in the best pose found, returns its miss."""
        if reset:
            self._arm.reset()
        best, best_angles = math.inf, None
        for _ in range(_ROUNDS):
            tool, angles = self._arm.place_tool(target)
            miss = math.dist(tool, target)
            if miss < best:
                gain, best, best_angles = best - miss, miss, angles
                if miss <= _CONVERGED_M or gain < _STALLED_M:
                    break
            elif best_angles is not None:  # worse (the KUKA's IK alternates): back to the best
                self._arm.place_joints(best_angles)
                break
        return best

    def _arc(self, target: Vec3) -> list[Vec3]:
        """Waypoints from the ready pose's tool point to ``target`` (see `swing`)."""
        self._arm.reset()
        home = self._arm.tool_state()[0]
        return swing((float(home[0]), float(home[1]), float(home[2])), target)


def swing(start: Vec3, target: Vec3, step: float = _ARC_STEP_M) -> list[Vec3]:
    """Waypoints about the base axis from ``start`` to ``target`` (base frame), the short way.

    Angle, distance from the axis and height change in proportion, so the path keeps clear of
    the axis; waypoints are about ``step`` apart. The last one is ``target``.
    """
    h_angle, h_radius = math.atan2(start[1], start[0]), math.hypot(start[0], start[1])
    angle, radius = math.atan2(target[1], target[0]), math.hypot(target[0], target[1])
    turn = math.remainder(angle - h_angle, math.tau)
    length = abs(turn) * max(radius, h_radius) + abs(radius - h_radius) + abs(target[2] - start[2])
    steps = max(1, math.ceil(length / step))
    waypoints = []
    for k in range(1, steps + 1):
        f = k / steps
        a, r = h_angle + f * turn, h_radius + f * (radius - h_radius)
        waypoints.append((r * math.cos(a), r * math.sin(a), start[2] + f * (target[2] - start[2])))
    return waypoints


def probe(model: str) -> ReachProbe:
    """The process's probe for a robot model, built on first use.

    Keyed by process id as well: a forked worker builds its own rather than share its
    parent's physics client.
    """
    key = (model, os.getpid())
    with _PROBES_LOCK:
        found = _PROBES.get(key)
        if found is None:
            found = _PROBES[key] = ReachProbe(model)
        return found
