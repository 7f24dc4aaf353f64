"""Feasibility of a site's cell: can the conveyor-sort task succeed in the bundle's layout.

`check_layout` runs on every bundle whose files are valid (`envs.factory.loader` calls it, so
``testbed sites check``, `envs.sites.load_site` and ``gym.make`` share it) and returns errors
(no episode can succeed, or the env refuses the site) and warnings (marginal: it works, but
barely). Each finding is a `DataIssue` naming the file, row and station, the value and what
would fix it, like the loader's own issues.

Checked here: the env's limits (bins), level belt and bins, nothing below the floor, no
station inside another or the robot's base, gravity, bin openings against the task's lost-part
rule, the time an episode allows, and speeds; the reach checks (pick window, drop points,
carries, fixtures) are in `envs.factory.workspace`, finger grippers against the peg and the
pallet pattern in `envs.factory.finger_room`. docs/factory_bundle.md ("Laying out a
cell") explains each rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from envs.errors import DataIssue
from envs.factory.arrivals import ARRIVE
from envs.factory.finger_room import check_finger_room
from envs.factory.geometry import Box
from envs.factory.layout import (
    DROP_HEIGHT_M,
    FIRST_ARRIVAL_S,
    FLOOR_TOLERANCE_M,
    IN_BIN_ABOVE_RIM_M,
    LEVEL_TOLERANCE_RAD,
    LOST_BELOW_BELT_M,
    OVERLAP_TOLERANCE_M,
    Layout,
    Report,
    fmt,
)
from envs.factory.schema import SiteSpec
from envs.factory.task_sections import ConveyorSortSection
from envs.factory.workspace import Window, check_reach
from envs.observation import MAX_BINS

_ROW = re.compile(r"row (\d+)")
MIN_WINDOW_S = 1.5
"""A part should spend at least this long in the pick window (else: a warning)."""
SORT_MARGIN_S = 3.0
"""Time to pick and place the last part after it reaches the window (for the warning)."""


@dataclass(frozen=True)
class Findings:
    """What `check_layout` found.

    Attributes:
        errors: What keeps the task from succeeding (or the env from accepting the site).
        warnings: What works, but barely.
        window: The pick window, from and to (m along the belt from its centre; None if the
            belt is out of reach).
        carries: Bin station id -> the pick point (world) a straight carry to it starts from.
    """

    errors: tuple[DataIssue, ...]
    warnings: tuple[DataIssue, ...]
    window: tuple[float, float] | None = None
    carries: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)


def check_layout(spec: SiteSpec, rows: Mapping[str, str] | None = None) -> Findings:
    """Check that the task can succeed in the site's cell.

    Args:
        spec: A site whose files passed the loader's checks.
        rows: Station id -> its row in stations.csv, e.g. ``row 3 (line 4)``.

    Returns:
        The errors and the warnings, each a `DataIssue`.
    """
    report = Report(spec, rows)
    layout = Layout(spec)
    for check in (_bin_count, _level, _floor, _overlaps, _gravity, _bin_heights):
        check(layout, report)
    window, carries = check_reach(layout, report)
    if window is not None:
        _timing(layout, window, report)
        _speeds(layout, window, report)
    _arrival_conveyor(layout, report)
    check_finger_room(spec, report)
    span = None if window is None else (window.start, window.end)
    return Findings(_by_row(report.errors), _by_row(report.warnings), span, carries)


def _by_row(issues: list[DataIssue]) -> tuple[DataIssue, ...]:
    """Findings in file order, and by row within a file (stable: in check order otherwise)."""
    files = ("site.yaml", "stations.csv", "parts.csv", "arrivals.csv")

    def key(issue: DataIssue) -> tuple[int, int]:
        row = _ROW.match(issue.location)
        order = files.index(issue.file) if issue.file in files else len(files)
        return order, int(row[1]) if row else 0

    return tuple(sorted(issues, key=key))


def _bin_count(layout: Layout, report: Report) -> None:
    for spot in layout.bins[MAX_BINS:]:
        report.station(
            spot.station.station_id,
            f"'bin', bin number {layout.bins.index(spot) + 1}",
            f"at most {MAX_BINS} bins (the observation's part_type has one slot per bin): let one "
            "bin accept several parts (accepts: A|B)",
            column="kind",
        )


def _level(layout: Layout, report: Report) -> None:
    for station in layout.spec.stations:
        if station.kind not in ("robot", "conveyor", "bin"):
            continue
        for column in ("rx", "ry"):
            angle = getattr(station, column)
            if abs(angle) > LEVEL_TOLERANCE_RAD:
                why = (
                    "the cell stands the robot upright, ignoring roll and pitch"
                    if station.kind == "robot"
                    else "the task treats the belt top and bin openings as level"
                )
                report.station(
                    station.station_id,
                    f"{angle:g}",
                    f"{column} = 0 on a {station.kind} ({why}): turn it with rz only",
                    column=column,
                )


def _floor(layout: Layout, report: Report) -> None:
    for station in layout.spec.stations:
        sid = station.station_id
        box = layout.boxes.get(sid)
        bottom = box.bottom_z if box else layout.spec.world_pose(sid)[0][2]
        if bottom >= -FLOOR_TOLERANCE_M:
            continue
        report.station(
            sid,
            f"{station.z:g}" + (f", bottom at z {bottom:.3f}" if box else ""),
            f"a station on or above the floor (z = 0): z >= {station.z - bottom:.3f}"
            + (
                f" (its bottom is {float(box.center[2]) - bottom:.3f} m below its centre)"
                if box
                else ""
            ),
            column="z",
        )


def _overlaps(layout: Layout, report: Report) -> None:
    order = [s.station_id for s in layout.spec.stations]
    solids = [(sid, layout.boxes[sid]) for sid in order if sid in layout.boxes]
    robot = layout.robot.station_id
    for index, (sid, box) in enumerate(solids):
        others = [*solids[:index], (robot, layout.footprint)]
        for other, other_box in others:
            depth = box.penetration(other_box)
            if depth > OVERLAP_TOLERANCE_M:
                _overlap(layout, report, sid, box, other, depth)


def _overlap(layout: Layout, report: Report, sid: str, box: Box, other: str, depth: float) -> None:
    kind = layout.spec.station(sid).kind
    what = (
        f"robot {other}'s base ({layout.spec.site.robot.model}: "
        f"{fmt(layout.model.footprint[0])} to {fmt(layout.model.footprint[1])} around it)"
        if other == layout.robot.station_id
        else f"{layout.spec.station(other).kind} {other}"
    )
    report.station(
        sid,
        f"{kind} at {fmt(box.center)} reaches {depth:.3f} m into {what}",
        f"stations apart (touching is fine): move them at least {depth:.3f} m apart",
    )


def _gravity(layout: Layout, report: Report) -> None:
    gx, gy, gz = layout.spec.site.gravity_mps2
    if gz >= 0.0:
        report.site(
            "gravity_mps2",
            f"[{gx:g}, {gy:g}, {gz:g}]",
            "gravity pointing down (a negative z component, e.g. [0, 0, -9.81]): parts must "
            "fall into the bins",
        )
    elif math.hypot(gx, gy) > 0.1 * -gz:
        report.site(
            "gravity_mps2",
            f"[{gx:g}, {gy:g}, {gz:g}]",
            "gravity close to vertical (parts slide on the belt and in the bins otherwise)",
            warn=True,
        )


def _bin_heights(layout: Layout, report: Report) -> None:
    belt = layout.belt
    lost_z = belt.top_z - LOST_BELOW_BELT_M
    for spot in layout.bins:
        in_bin_z = spot.top_z + IN_BIN_ABOVE_RIM_M
        shortest = min(layout.spec.part(p).size_z for p in spot.station.accepts)
        starts_inside = spot.drop[2] - shortest / 2.0 <= in_bin_z
        if in_bin_z >= lost_z or starts_inside:
            continue
        below = belt.top_z - spot.top_z
        need = spot.station.z + (lost_z - in_bin_z)
        report.station(
            spot.station.station_id,
            f"{spot.station.z:g}: bin at {fmt(spot.box.center)}, opening at z {spot.top_z:.3f}, "
            f"{below:.3f} m below the belt top of {belt.station.station_id} (z {belt.top_z:.3f})",
            f"a bin opening no more than {LOST_BELOW_BELT_M + IN_BIN_ABOVE_RIM_M:g} m below the "
            f"belt top (a part dropped {DROP_HEIGHT_M:g} m above the rim falls below z "
            f"{lost_z:.3f} before it is in the bin, and the task counts it lost): raise the bin "
            f"to z >= {need:.3f}, e.g. on a table",
            column="z",
        )


TIME_LIMIT_KEY = "tasks[conveyor-sort].time_limit_s"
PARTS_KEY = "tasks[conveyor-sort].parts_per_episode"


def _timing(layout: Layout, window: Window, report: Report) -> None:
    site = layout.spec.site
    section = site.task_section(ConveyorSortSection)
    n, limit = section.parts_per_episode, section.time_limit_s
    process = layout.spec.arrival_process
    speed = layout.belt.speed
    distance = max(window.first - window.entry, 0.0)
    travel = distance / speed if speed > 0 else (0.0 if distance == 0 else math.inf)
    earliest = FIRST_ARRIVAL_S + (n - 1) * min(process.inter_arrival_s) + travel
    typical = FIRST_ARRIVAL_S + (n - 1) * process.mean_inter_arrival_s + travel
    words = (
        f"{limit:g}: the last of {n} parts reaches the pick window {{:.1f}} s into an episode "
        f"with the log's {{}} gaps ({travel:.1f} s of it on the belt)"
    )
    if earliest >= limit:
        report.site(
            TIME_LIMIT_KEY,
            words.format(earliest, "shortest"),
            f"a time limit in which every part can be sorted: {TIME_LIMIT_KEY} >= "
            f"{math.ceil(earliest + SORT_MARGIN_S):.0f}, fewer {PARTS_KEY}, or "
            "shorter gaps in arrivals.csv",
        )
    elif typical + SORT_MARGIN_S > limit:
        report.site(
            TIME_LIMIT_KEY,
            words.format(typical, "mean"),
            f"time to sort the last part in a typical episode: {TIME_LIMIT_KEY} >= "
            f"{math.ceil(typical + SORT_MARGIN_S):.0f}",
            warn=True,
        )


def _speeds(layout: Layout, window: Window, report: Report) -> None:
    site, belt = layout.spec.site, layout.belt
    speed = site.robot.controller.max_ee_speed_mps
    sid = belt.station.station_id
    if belt.speed >= speed:
        report.station(
            sid,
            f"{belt.speed:g} m/s",
            "a belt slower than the tool (site.yaml robot.controller.max_ee_speed_mps = "
            f"{speed:g} m/s), or the tool cannot keep pace with a part",
            column="conveyor_speed_mps",
            warn=True,
        )
    if belt.speed > 0 and window.length / belt.speed < MIN_WINDOW_S:
        report.station(
            sid,
            f"{belt.speed:g} m/s through a pick window of {window.length:.2f} m "
            f"({window.length / belt.speed:.1f} s)",
            f"at least {MIN_WINDOW_S:g} s for a part in the pick window: a slower belt, or one "
            "that runs closer to the robot",
            column="conveyor_speed_mps",
            warn=True,
        )
    limit = site.safety.max_tcp_speed_mps
    if speed > limit:
        report.site(
            "robot.controller.max_ee_speed_mps",
            f"{speed:g} m/s",
            f"at most safety.max_tcp_speed_mps = {limit:g} m/s: an action of length 1 moves the "
            "tool at max_ee_speed_mps, over the site's TCP speed limit (a policy must keep its "
            "actions shorter there)",
            warn=True,
        )


def _arrival_conveyor(layout: Layout, report: Report) -> None:
    belt = layout.belt.station.station_id
    arrivals = layout.spec.arrivals
    elsewhere = sorted({a.station_id for a in arrivals if a.activity == ARRIVE} - {belt})
    if elsewhere:
        report.add(
            DataIssue(
                "arrivals.csv",
                "column station_id",
                ", ".join(elsewhere),
                f"'arrive' events at {belt}: the env puts every part on the first conveyor in "
                f"stations.csv ({belt}), wherever the log says it arrived",
            ),
            warn=True,
        )
