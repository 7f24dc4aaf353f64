"""Reach checks: the robot picks from the belt, reaches every drop point and carries between.

A point is *in reach* when the controller may command the tool there (between
`INNER_RADIUS_M` and the model's ``reach_m`` from the base axis, at most
`MAX_HEIGHT_ABOVE_BASE_M` above the base, above the lowest bin floor), no keep-out zone holds
it, and the controller's IK from the ready pose gets the tool within `REACH_TOLERANCE_M` of it
(`envs.robots.reach`).

The *pick window* is the longest stretch of the belt's centre line, downstream of where parts
enter, whose points are in reach at the height of the tool on the shortest and on the tallest
part (sampled every `SAMPLE_STEP_M`). A carry is possible when, from some point of the window,
the straight tool path to the bin's drop point stays `INNER_RADIUS_M` clear of the base axis
(the controller never commands the tool nearer, so a path through there stalls) and crosses
no keep-out zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.factory.geometry import horizontal_clearance, segment_crosses
from envs.factory.layout import (
    BELT_ENTRY_M,
    DROP_HEIGHT_M,
    MARGINAL_REACH_M,
    REACH_TOLERANCE_M,
    BinSpot,
    Layout,
    Report,
    fmt,
)
from envs.robots.models import INNER_RADIUS_M

SAMPLE_STEP_M = 0.05
"""Spacing of the points tried along the belt."""
MAX_LAG_M = 0.05
"""How far the tool may fall behind a carry's path and still be counted as following it."""
_SAME_HEIGHT_M = 0.01
_CARRIES_TRIED = 6  # pick points whose whole carry path is checked for reach, per bin
_SCANS: dict[tuple, tuple[tuple[float, str | None], ...]] = {}
_SCAN_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Window:
    """The pick window: from ``start`` to ``end`` metres along the belt from its centre.

    A belt that passes behind a robot may be in reach on both sides of it: the window is the
    longest stretch, ``points`` holds every sample in reach.
    """

    start: float
    end: float
    entry: float
    """Where parts enter the belt (along it from its centre)."""
    first: float
    """The first sample in reach downstream of the entry (where a part can first be picked)."""
    points: tuple[np.ndarray, ...]
    """Every sample in reach, as a tool point on the shortest part's top face."""

    @property
    def length(self) -> float:
        """Length of the window along the belt (m)."""
        return self.end - self.start


def check_reach(
    layout: Layout, report: Report
) -> tuple[Window | None, dict[str, tuple[float, float, float]]]:
    """Check the pick window, every drop point, the carries between them and the fixtures.

    Returns:
        The pick window (None if no point of the belt is in reach: an error is reported), and
        for each bin a carry works for, the pick point it starts from.
    """
    window = _pick_window(layout, report)
    reachable = [spot for spot in layout.bins if _drop_point(layout, spot, report)]
    carries: dict[str, tuple[float, float, float]] = {}
    for spot in reachable:
        start = None if window is None else _carry(layout, window, spot, report)
        if start is not None:
            carries[spot.station.station_id] = (float(start[0]), float(start[1]), float(start[2]))
    _fixtures(layout, report)
    return window, carries


def problem(layout: Layout, point: np.ndarray) -> tuple[str | None, float]:
    """Why a tool point is out of reach (None if it is in reach), and its IK residual."""
    bounds = layout.out_of_bounds(point)
    if bounds:
        return bounds, math.inf
    zone = layout.zone_at(point)
    if zone:
        return f"inside keep-out zone {zone!r}", math.inf
    residual = layout.residual(point)
    if residual > REACH_TOLERANCE_M:
        return f"out of the IK's reach (the tool gets within {residual * 1000:.0f} mm)", residual
    return None, residual


# ------------------------------------------------------------------------------ pick window


def _pick_window(layout: Layout, report: Report) -> Window | None:
    belt, parts = layout.belt, layout.spec.parts
    heights = sorted({belt.top_z + p.size_z for p in parts})
    heights = [heights[0]] + ([heights[-1]] if heights[-1] - heights[0] > _SAME_HEIGHT_M else [])
    entry = -belt.half_length + min(p.size_x for p in parts) / 2.0 + BELT_ENTRY_M
    scan = _scan(layout, _samples(entry, belt.half_length), heights)
    runs: list[list[float]] = [[]]
    for along, reason in scan:
        if reason is None:
            runs[-1].append(along)
        elif runs[-1]:
            runs.append([])
    best = max(runs, key=len)
    if not best:
        _no_window(layout, report, scan, heights[0])
        return None
    reachable = [along for run in runs for along in run]
    points = tuple(belt.point(along, heights[0]) for along in reachable)
    return Window(best[0], best[-1], entry, reachable[0], points)


def _samples(entry: float, end: float) -> list[float]:
    """Points along the belt: multiples of `SAMPLE_STEP_M` from its centre.

    Or the middle of a belt too short to hold one.
    """
    first, last = math.ceil(entry / SAMPLE_STEP_M), math.floor(end / SAMPLE_STEP_M)
    alongs = [k * SAMPLE_STEP_M for k in range(first, last + 1)]
    return alongs or [(entry + end) / 2.0]


def _scan(
    layout: Layout, alongs: list[float], heights: list[float]
) -> tuple[tuple[float, str | None], ...]:
    """Each sample along the belt and why it is out of reach (None: in reach at every height).

    Memoised on everything the answer depends on, so that bundles which share a cell's
    geometry (the property tests try thousands) scan it once.
    """
    belt = layout.belt
    ends = np.array([belt.point(alongs[0], heights[0]), belt.point(alongs[-1], heights[-1])])
    low, high = ends.min(axis=0), ends.max(axis=0)
    zones = tuple(  # only those that can hold a sample matter
        (z.min_xyz, z.max_xyz)
        for z in layout.spec.site.safety.keep_out_zones
        if np.all(np.asarray(z.min_xyz) <= high) and np.all(np.asarray(z.max_xyz) >= low)
    )
    floor = layout.min_tool_z if layout.min_tool_z > heights[0] else None
    key = (
        layout.spec.site.robot.model,
        *(round(float(v), 6) for v in (*layout.base, layout.yaw, *belt.center, *belt.direction)),
        tuple(round(h, 6) for h in heights),
        tuple(alongs),
        zones,
        floor,
    )
    found = _SCANS.get(key)
    if found is None:
        found = tuple((along, _sample(layout, along, heights)) for along in alongs)
        if len(_SCANS) >= _SCAN_CACHE_LIMIT:
            _SCANS.clear()
        _SCANS[key] = found
    return found


def _sample(layout: Layout, along: float, heights: list[float]) -> str | None:
    for height in heights:  # the tool on the shortest part, then on the tallest
        reason = problem(layout, layout.belt.point(along, height))[0]
        if reason:
            return f"{fmt(layout.belt.point(along, height))} is {reason}"
    return None


def _no_window(
    layout: Layout, report: Report, scan: tuple[tuple[float, str | None], ...], height: float
) -> None:
    belt, robot = layout.belt, layout.robot.station_id
    # Name the sample nearest a comfortable distance from the base: the one to move towards.
    along, reason = min(
        scan, key=lambda s: abs(layout.radius(belt.point(s[0], height)) - _comfortable(layout))
    )
    distance = _line_distance(layout)
    report.station(
        belt.station.station_id,
        f"top at z {belt.top_z:.2f}, centre line {distance:.2f} m from the base axis; no point "
        f"along it is in reach, e.g. {reason}",
        f"a belt within reach of robot {robot} ({_reach_words(layout)}): run its centre line "
        f"about {_comfortable(layout):.2f} m from the robot base, near the base's height (a "
        "high belt needs the robot on a pedestal)",
    )


def _line_distance(layout: Layout) -> float:
    belt = layout.belt
    offset = layout.base[:2] - belt.center[:2]
    return abs(float(offset[0] * belt.direction[1] - offset[1] * belt.direction[0]))


def _comfortable(layout: Layout) -> float:
    """A horizontal distance from the base where every model reaches well (about 0.45 m)."""
    return round((INNER_RADIUS_M + layout.model.reach_m - 0.15) / 2.0, 2)


def _reach_words(layout: Layout) -> str:
    model = layout.model
    return (
        f"{layout.spec.site.robot.model}: {INNER_RADIUS_M:g}-{model.reach_m:g} m from the base "
        "axis, less far well above or below the base"
    )


# ------------------------------------------------------------------------------ drop points


def _drop_point(layout: Layout, spot: BinSpot, report: Report) -> bool:
    reason, residual = problem(layout, spot.drop)
    sid, robot = spot.station.station_id, layout.robot.station_id
    if reason:
        report.station(
            sid,
            f"bin at {fmt(spot.box.center)}; its drop point {fmt(spot.drop)}, "
            f"{DROP_HEIGHT_M:g} m above the opening, is {reason}",
            f"a drop point robot {robot} can reach ({_reach_words(layout)}): move the bin "
            + (
                "out of the keep-out zone"
                if "keep-out" in reason
                else f"to about {_comfortable(layout):.2f} m from the robot base"
            ),
        )
        return False
    if residual > MARGINAL_REACH_M:
        report.station(
            sid,
            f"bin at {fmt(spot.box.center)}; the IK gets the tool only within "
            f"{residual * 1000:.0f} mm of its drop point {fmt(spot.drop)}",
            f"a drop point well inside robot {robot}'s reach (this one is marginal): move the "
            f"bin towards {_comfortable(layout):.2f} m from the robot base",
            warn=True,
        )
    return True


def _carry(layout: Layout, window: Window, spot: BinSpot, report: Report) -> np.ndarray | None:
    """The pick point of a straight carry to the bin, or None after reporting that none works.

    Pick points are tried in order of the berth their path gives the base axis, widest first
    (the arm folds least); the cheap tests (that berth, keep-out zones) go before following the
    path, which is done for at most `_CARRIES_TRIED` of them.
    """
    tried, first = 0, ""
    points = np.array(window.points)
    clearance = [horizontal_clearance(layout.base, p, spot.drop) for p in points]
    for start in points[np.argsort(clearance, kind="stable")[::-1]]:  # widest berth first
        blocked = _blocked(layout, start, spot.drop)
        if blocked is None:
            if tried == _CARRIES_TRIED:
                break
            tried += 1
            blocked = _out_of_reach_along(layout, start, spot.drop)
        if blocked is None:
            return start
        first = first or f"from {fmt(start)} it {blocked}"
    robot, belt = layout.robot.station_id, layout.belt.station.station_id
    report.station(
        spot.station.station_id,
        f"bin at {fmt(spot.box.center)}; no straight tool path from the pick window on {belt} "
        f"to its drop point {fmt(spot.drop)} works: {first}",
        f"a straight carry from the belt that keeps {INNER_RADIUS_M:g} m from robot {robot}'s "
        "base axis (the controller never commands the tool nearer: it stalls there), stays in "
        "reach and out of keep-out zones: put the bin on the belt's side of the robot, beside "
        "the pick window",
    )
    return None


def _blocked(layout: Layout, start: np.ndarray, end: np.ndarray) -> str | None:
    """Why the carry's path cannot be used (base axis, keep-out zones), or None: cheap tests."""
    clearance = horizontal_clearance(layout.base, start, end)
    if clearance < INNER_RADIUS_M:
        return f"passes {clearance:.2f} m from the base axis"
    path = carry_path(start, end)
    for zone in layout.spec.site.safety.keep_out_zones:
        if any(
            segment_crosses(a, b, zone.min_xyz, zone.max_xyz)
            for a, b in zip(path, path[1:], strict=False)
        ):
            return f"crosses keep-out zone {zone.name!r}"
    return None


def carry_path(start: np.ndarray, end: np.ndarray) -> list[np.ndarray]:
    """The tool's path of a carry, a point every `SAMPLE_STEP_M` or less.

    Up from the pick point to the higher of the two points' heights, straight across, then
    down to the drop point.
    """
    height = max(float(start[2]), float(end[2]))
    corners = [start, np.array([*start[:2], height]), np.array([*end[:2], height]), end]
    path = [start]
    for a, b in zip(corners, corners[1:], strict=False):
        steps = max(1, math.ceil(float(np.linalg.norm(b - a)) / SAMPLE_STEP_M))
        path += [a + (b - a) * (k / steps) for k in range(1, steps + 1)]
    return path


def _out_of_reach_along(layout: Layout, start: np.ndarray, end: np.ndarray) -> str | None:
    """Why the tool cannot make the carry (`carry_path`), or None.

    Every point on the way must be within the controller's bounds, and the IK, following the
    path step by step (`ReachProbe.follow`: the arm swung to the pick point from its ready
    pose, joints held to their limits), must start and end within `REACH_TOLERANCE_M` of the
    pick and the drop point.
    On the way it may fall up to `MAX_LAG_M` behind (a joint at its limit), as the
    controller does, and catch up; further behind, the controller is stuck.
    """
    path = carry_path(start, end)
    for point in path[1:-1]:
        bounds = layout.out_of_bounds(point)
        if bounds:
            return f"passes {fmt(point)}, {bounds}"
    residuals = layout.follow(path)
    if residuals[0] > REACH_TOLERANCE_M:
        return (
            f"starts where the arm, turning to it from its ready pose, gets the tool only "
            f"within {residuals[0] * 1000:.0f} mm"
        )
    worst = int(np.argmax(residuals))
    if residuals[worst] > MAX_LAG_M:
        return (
            f"passes {fmt(path[worst])}, where the arm, following the path from the pick "
            f"point, falls {residuals[worst] * 1000:.0f} mm behind (a joint at its limit)"
        )
    if residuals[-1] > REACH_TOLERANCE_M:
        return (
            f"ends {residuals[-1] * 1000:.0f} mm from the drop point: the arm, following the "
            "path from the pick point, is held by a joint limit"
        )
    return None


def _fixtures(layout: Layout, report: Report) -> None:
    for station in layout.spec.stations_of("fixture"):
        box = layout.boxes[station.station_id]
        top = np.array([box.center[0], box.center[1], box.top_z])
        reason, residual = problem(layout, top)
        if reason is None and residual <= MARGINAL_REACH_M:
            continue
        report.station(
            station.station_id,
            f"top face centre {fmt(top)} is "
            + (reason or f"reached only within {residual * 1000:.0f} mm"),
            f"a fixture in reach of robot {layout.robot.station_id} (the conveyor-sort task "
            "does not use fixtures; a task that works at one needs it in reach)",
            warn=True,
        )
