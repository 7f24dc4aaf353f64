"""Reach probes: how close a robot model's controller can put its tool (pointing down) to a point.

A probe builds one robot model in a DIRECT `Sim` of its own (0.1-0.5 s, once per model and
process), base at the origin with yaw 0, and answers `ReachProbe.residual`: the distance the
controller's own IK (`CartesianArm.place_tool`, the model's null-space settings and joint
limits) leaves between the tool and a point given in the robot base frame, solving from the
ready pose. A few rounds are tried, each from the joints the last one reached, as successive
control steps would (the KUKA's IK alternates between a solution and a miss), and the best is
kept. Answers are cached per point (to the millimetre), so checking many bundles stays cheap:
about 0.4 ms a new point.
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
_CONVERGED_M = 0.001  # a round this close ends the search
_ARC_STEP_M = 0.1  # waypoint spacing of the swing (5 cm found the same answers, slower)
_SWING_ABOVE_M = 0.004  # a direct miss by less is good enough
_SWING_BELOW_M = 0.05  # a direct miss by more is out of reach (swinging never closed such a gap)
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
                cached = self._cache[key] = self._solve(tuple(v / 1000 for v in key))  # type: ignore[arg-type]
                if len(self._cache) > _CACHE_LIMIT:
                    self._cache.clear()
            return cached

    def path_residuals(self, points: Sequence[Vec3]) -> tuple[float, ...]:
        """How close the tool follows a path (base frame) the way the controller would.

        The first point is reached as `residual` reaches a point; each next one is solved from
        the joints the last one left, as successive control steps solve (so a path through a
        joint limit shows, though each of its points may be in reach on its own).

        Returns:
            The distance between the tool and each point of the path.
        """
        key = tuple((round(p[0] * 1000), round(p[1] * 1000), round(p[2] * 1000)) for p in points)
        with self._lock:
            cached = self._paths.get(key)
            if cached is None:
                targets = [tuple(v / 1000 for v in point) for point in key]
                first = self._solve(targets[0])  # type: ignore[arg-type]
                rest = [self._rounds(t, reset=False) for t in targets[1:]]  # type: ignore[arg-type]
                cached = self._paths[key] = (first, *rest)
                if len(self._paths) > _CACHE_LIMIT // 10:
                    self._paths.clear()
            return cached

    def _solve(self, target: Vec3) -> float:
        best = self._rounds(target, reset=True)
        if _SWING_ABOVE_M < best < _SWING_BELOW_M:  # a long swing? go there as a policy would
            for waypoint in self._arc(target):
                self._arm.place_tool(waypoint)
            best = min(best, self._rounds(target, reset=False))
        return best

    def _rounds(self, target: Vec3, reset: bool) -> float:
        if reset:
            self._arm.reset()
        best = math.inf
        for _ in range(_ROUNDS):
            miss = math.dist(self._arm.place_tool(target), target)
            if miss <= _CONVERGED_M or best - miss < _STALLED_M:
                return min(best, miss)
            best = miss
        return best

    def _arc(self, target: Vec3) -> list[Vec3]:
        """Waypoints from the ready pose's tool point to ``target``, about the base axis."""
        self._arm.reset()
        hx, hy, hz = (float(v) for v in self._arm.tool_state()[0])
        h_angle, h_radius = math.atan2(hy, hx), math.hypot(hx, hy)
        angle, radius = math.atan2(target[1], target[0]), math.hypot(target[0], target[1])
        turn = math.remainder(angle - h_angle, math.tau)
        length = abs(turn) * max(radius, h_radius) + abs(radius - h_radius) + abs(target[2] - hz)
        steps = max(1, math.ceil(length / _ARC_STEP_M))
        waypoints = []
        for k in range(1, steps + 1):
            f = k / steps
            a, r = h_angle + f * turn, h_radius + f * (radius - h_radius)
            waypoints.append((r * math.cos(a), r * math.sin(a), hz + f * (target[2] - hz)))
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
