"""Cross-file rules of a factory bundle: ids, references, the robot, bins, meshes and the log.

Each check reads what the per-file parsing produced (`Bundle`) and appends `DataIssue`s. A
check skips a file that could not be read at all; rules that count stations or rows skip a
file with invalid rows, so that one bad row is not reported again as a missing conveyor.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from envs.errors import DataIssue
from envs.factory._parse import Row, Table
from envs.factory.arrivals import ARRIVE, derive_arrival_process
from envs.factory.schema import Arrival, Part, SiteFile, Station
from envs.robots.models import ROBOT_MODELS

MESH_SUFFIXES = (".obj", ".stl")


@dataclass(frozen=True)
class Bundle:
    """The per-file results the cross-file checks work on (None: the file was unusable)."""

    root: Path
    files: frozenset[str]
    site: SiteFile | None
    stations: Table[Station] | None
    parts: Table[Part] | None
    arrivals: Table[Arrival] | None


def run_checks(bundle: Bundle, issues: list[DataIssue]) -> None:
    """Run every cross-file rule, appending what is wrong to ``issues``.

    Args:
        bundle: The parsed files.
        issues: Collector the problems are appended to.
    """
    for check in _CHECKS:
        check(bundle, issues)


def _rows(numbers: list[int]) -> str:
    """``row 3`` / ``rows 3, 7, 9`` / ``rows 3, 7, 9, 12, 15 and 40 more``."""
    if len(numbers) == 1:
        return f"row {numbers[0]}"
    shown = ", ".join(str(n) for n in numbers[:5])
    more = f" and {len(numbers) - 5} more" if len(numbers) > 5 else ""
    return f"rows {shown}{more}"


def _known(ids: Iterable[str]) -> str:
    """The first 12 ids, each cut to 40 characters (a malformed row's id can be any length)."""
    listed = sorted(ids)
    shown = [i if len(i) <= 40 else i[:37] + "..." for i in listed[:12]]
    return ", ".join(shown) + (", ..." if len(listed) > 12 else "") or "none"


def _check_unique_ids(bundle: Bundle, issues: list[DataIssue]) -> None:
    for file, table, column in (
        ("stations.csv", bundle.stations, "station_id"),
        ("parts.csv", bundle.parts, "part_id"),
    ):
        first: dict[str, str] = {}
        for row in table.rows if table else []:
            key = getattr(row.model, column)
            if key in first:
                where, expected = f"{row.where}, column {column}", f"a unique {column}"
                issues.append(
                    DataIssue(
                        file, where, repr(key), f"{expected} ({key!r} is already {first[key]})"
                    )
                )
            first.setdefault(key, row.where)


def _check_parents(bundle: Bundle, issues: list[DataIssue]) -> None:
    if bundle.stations is None:
        return
    parents = {row.model.station_id: row.model.parent_id for row in bundle.stations.rows}
    known = set(parents) | bundle.stations.failed_keys
    for row in bundle.stations.rows:
        parent = row.model.parent_id
        where = f"{row.where}, column parent_id"
        if parent is None:
            continue
        if parent not in known:
            expected = f"a station_id of stations.csv or an empty cell (known: {_known(known)})"
            issues.append(DataIssue("stations.csv", where, repr(parent), expected))
            continue
        chain = [row.model.station_id]
        while parent is not None and parent not in chain and parent in parents:
            chain.append(parent)
            parent = parents[parent]
        if parent == row.model.station_id:
            cycle = " -> ".join([*chain, parent])
            expected = f"a parent chain that ends at a world-frame station (cycle {cycle})"
            issues.append(DataIssue("stations.csv", where, repr(row.model.parent_id), expected))


def _check_robot(bundle: Bundle, issues: list[DataIssue]) -> None:
    stations = bundle.stations
    if stations is None:
        return
    robots = [row for row in stations.rows if row.model.kind == "robot"]
    if not robots and not stations.failed_keys:
        issues.append(
            DataIssue(
                "stations.csv",
                "column kind",
                "no robot station",
                "exactly one station of kind robot",
            )
        )
    for row in robots[1:]:
        expected = f"exactly one robot station ({robots[0].model.station_id!r} is one)"
        issues.append(DataIssue("stations.csv", f"{row.where}, column kind", "'robot'", expected))
    if bundle.site is None:
        return
    wanted = bundle.site.robot.station_id
    named = next((r for r in stations.rows if r.model.station_id == wanted), None)
    if named is None and wanted not in stations.failed_keys:
        names = _known(r.model.station_id for r in robots)
        expected = f"the station_id of the robot in stations.csv (robot stations: {names})"
        issues.append(DataIssue("site.yaml", "robot.station_id", repr(wanted), expected))
    elif named is not None and named.model.kind != "robot":
        expected = f"a station of kind robot (stations.csv {named.where} is a {named.model.kind})"
        issues.append(DataIssue("site.yaml", "robot.station_id", repr(wanted), expected))


def _check_walkways(bundle: Bundle, issues: list[DataIssue]) -> None:
    """Every co-worker walks along a walkway station of stations.csv."""
    stations = bundle.stations
    if bundle.site is None or stations is None:
        return
    walkways = {r.model.station_id: r for r in stations.rows if r.model.kind == "walkway"}
    for index, person in enumerate(bundle.site.coworkers):
        if person.walkway in walkways or person.walkway in stations.failed_keys:
            continue
        named = next((r for r in stations.rows if r.model.station_id == person.walkway), None)
        what = f" (stations.csv {named.where} is a {named.model.kind})" if named else ""
        expected = f"the station_id of a walkway in stations.csv{what} (walkways: "
        expected += f"{_known(walkways)})"
        where = f"coworkers[{index}].walkway"
        issues.append(DataIssue("site.yaml", where, repr(person.walkway), expected))


def _check_safeguards(bundle: Bundle, issues: list[DataIssue]) -> None:
    """Safeguards have distinct names and guard walkway stations of stations.csv."""
    stations = bundle.stations
    if bundle.site is None or stations is None:
        return
    walkways = {r.model.station_id for r in stations.rows if r.model.kind == "walkway"}
    seen: set[str] = set()
    for index, guard in enumerate(bundle.site.safety.safeguards):
        where = f"safety.safeguards[{index}]"
        if guard.name in seen:
            expected = "a name no other safeguard has"
            issues.append(DataIssue("site.yaml", f"{where}.name", repr(guard.name), expected))
        seen.add(guard.name)
        for walkway in guard.guards:
            if walkway in walkways or walkway in stations.failed_keys:
                continue
            named = next((r for r in stations.rows if r.model.station_id == walkway), None)
            what = f" (stations.csv {named.where} is a {named.model.kind})" if named else ""
            expected = f"the station_id of a walkway in stations.csv{what} (walkways: "
            expected += f"{_known(walkways)})"
            issues.append(DataIssue("site.yaml", f"{where}.guards", repr(walkway), expected))


def _check_required_kinds(bundle: Bundle, issues: list[DataIssue]) -> None:
    stations = bundle.stations
    if stations is None or stations.failed_keys:
        return
    kinds = {row.model.kind for row in stations.rows}
    for kind, why in (("conveyor", "parts arrive on"), ("bin", "parts are sorted into")):
        if kind not in kinds:
            expected = f"at least one station of kind {kind} ({why})"
            issues.append(DataIssue("stations.csv", "column kind", f"no {kind} station", expected))


def _check_bins(bundle: Bundle, issues: list[DataIssue]) -> None:
    if bundle.stations is None or bundle.parts is None:
        return
    parts = {row.model.part_id: row for row in bundle.parts.rows}
    known = set(parts) | bundle.parts.failed_keys
    bins = [row for row in bundle.stations.rows if row.model.kind == "bin"]
    for row in bins:
        for part_id in row.model.accepts:
            where = f"{row.where}, column accepts"
            if part_id not in known:
                expected = f"part_ids listed in parts.csv (known: {_known(known)})"
                issues.append(DataIssue("stations.csv", where, repr(part_id), expected))
            elif part_id in parts and not _fits(parts[part_id].model, row.model):
                issues.append(
                    DataIssue(
                        "stations.csv",
                        where,
                        repr(part_id),
                        _fit_text(parts[part_id].model, row.model),
                    )
                )
    for part_id, part_row in parts.items():
        holders = [row.model.station_id for row in bins if part_id in row.model.accepts]
        if len(holders) == 1 or (not holders and bundle.stations.failed_keys):
            continue
        got = "accepted by " + (", ".join(holders) if holders else "no bin")
        expected = "exactly one bin in stations.csv whose accepts lists this part"
        issues.append(DataIssue("parts.csv", f"{part_row.where}, column part_id", got, expected))


def _fits(part: Part, bin_: Station) -> bool:
    footprint = sorted(part.size[:2])
    opening = sorted(bin_.size[:2])
    return footprint[0] <= opening[0] and footprint[1] <= opening[1]


def _fit_text(part: Part, bin_: Station) -> str:
    return (
        f"parts that fit the bin's opening (part {part.size_x:g} x {part.size_y:g} m, "
        f"bin {bin_.size_x:g} x {bin_.size_y:g} m)"
    )


def _check_liftable(bundle: Bundle, issues: list[DataIssue]) -> None:
    if bundle.site is None or bundle.parts is None:
        return
    gravity = math.hypot(*bundle.site.gravity_mps2)
    limit = bundle.site.robot.gripper.max_force_n
    for row in bundle.parts.rows:
        weight = row.model.mass_kg * gravity
        if weight > limit:
            expected = (
                f"a part the gripper can lift: weight {weight:.1f} N is above "
                f"site.yaml robot.gripper.max_force_n = {limit:g} N"
            )
            issues.append(
                DataIssue(
                    "parts.csv", f"{row.where}, column mass_kg", repr(row.model.mass_kg), expected
                )
            )


def _check_fingers(bundle: Bundle, issues: list[DataIssue]) -> None:
    """With ``gripper.kind: fingers``: the opening fits the model, and every part fits it."""
    if bundle.site is None or bundle.site.robot.gripper.kind != "fingers":
        return
    gripper = bundle.site.robot.gripper
    widest = ROBOT_MODELS[bundle.site.robot.model].fingers.max_opening_m
    if gripper.opening_m is not None and gripper.opening_m > widest:
        expected = f"at most {widest:g} m, the widest the {bundle.site.robot.model} fingers open"
        issues.append(
            DataIssue("site.yaml", "robot.gripper.opening_m", repr(gripper.opening_m), expected)
        )
        return
    opening = widest if gripper.opening_m is None else gripper.opening_m
    for row in bundle.parts.rows if bundle.parts else []:
        narrow = min(row.model.size_x, row.model.size_y)
        if narrow >= opening:
            expected = (
                f"a part the fingers can grip: its narrow side {narrow:g} m is not below "
                f"the finger opening {opening:g} m (site.yaml robot.gripper.opening_m)"
            )
            issues.append(
                DataIssue("parts.csv", f"{row.where}, column size_y", repr(narrow), expected)
            )


def _check_meshes(bundle: Bundle, issues: list[DataIssue]) -> None:
    for row in bundle.parts.rows if bundle.parts else []:
        uri = row.model.mesh_uri
        if uri is None:
            continue
        problem = _mesh_problem(bundle, uri)
        if problem:
            issues.append(
                DataIssue("parts.csv", f"{row.where}, column mesh_uri", repr(uri), problem)
            )


def _mesh_problem(bundle: Bundle, uri: str) -> str | None:
    windows = PureWindowsPath(uri)
    if uri.startswith("/") or windows.is_absolute() or windows.drive or "\\" in uri:
        return "a relative path with '/' inside the bundle, e.g. assets/part.obj"
    path = PurePosixPath(uri)
    if ".." in path.parts:
        return "a path inside the bundle's assets/ folder (no '..')"
    if len(path.parts) < 2 or path.parts[0] != "assets":
        return "a path under the bundle's assets/ folder, e.g. assets/part.obj"
    if path.suffix.lower() not in MESH_SUFFIXES:
        return f"a mesh file ending in {' or '.join(MESH_SUFFIXES)}"
    if path.as_posix() not in bundle.files:
        return "an existing file under the bundle's assets/ (not found)"
    resolved = (bundle.root / path).resolve()
    if not resolved.is_relative_to(bundle.root.resolve()):
        return "a file inside the bundle (this one is a link to outside it)"
    return None


def _check_arrival_refs(bundle: Bundle, issues: list[DataIssue]) -> None:
    if bundle.arrivals is None:
        return
    rows = bundle.arrivals.rows
    if bundle.parts is not None:
        known = {r.model.part_id for r in bundle.parts.rows} | bundle.parts.failed_keys
        _unknown_refs(rows, "part_id", known, "a part_id from parts.csv", issues)
    if bundle.stations is None:
        return
    stations = {r.model.station_id: r for r in bundle.stations.rows}
    known = set(stations) | bundle.stations.failed_keys
    _unknown_refs(rows, "station_id", known, "a station_id from stations.csv", issues)
    at: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.model.activity == ARRIVE and row.model.station_id in stations:
            at[row.model.station_id].append(row.number)
    for station_id, numbers in at.items():
        station = stations[station_id]
        if station.model.kind != "conveyor":
            expected = (
                f"'{ARRIVE}' events at a conveyor station ({station_id} is a "
                f"{station.model.kind} in stations.csv)"
            )
            issues.append(
                DataIssue(
                    "arrivals.csv",
                    f"{_rows(numbers)}, column station_id",
                    repr(station_id),
                    expected,
                )
            )
        elif not station.model.conveyor_speed_mps:
            expected = f"conveyor_speed_mps > 0 on a conveyor parts '{ARRIVE}' at"
            issues.append(
                DataIssue(
                    "stations.csv",
                    f"{station.where}, column conveyor_speed_mps",
                    repr(station.model.conveyor_speed_mps),
                    expected,
                )
            )


def _unknown_refs(
    rows: list[Row[Arrival]], column: str, known: set[str], what: str, issues: list[DataIssue]
) -> None:
    unknown: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        value = getattr(row.model, column)
        if value not in known:
            unknown[value].append(row.number)
    for value, numbers in unknown.items():
        issues.append(
            DataIssue(
                "arrivals.csv",
                f"{_rows(numbers)}, column {column}",
                repr(value),
                f"{what} (known: {_known(known)})",
            )
        )


def _check_cases(bundle: Bundle, issues: list[DataIssue]) -> None:
    cases: dict[str, list[Row[Arrival]]] = defaultdict(list)
    for row in bundle.arrivals.rows if bundle.arrivals else []:
        cases[row.model.case_id].append(row)
    for case_id, rows in cases.items():
        arrives = [row.number for row in rows if row.model.activity == ARRIVE]
        if len(arrives) > 1:
            issues.append(
                DataIssue(
                    "arrivals.csv",
                    f"{_rows(arrives)}, column case_id",
                    repr(case_id),
                    f"one '{ARRIVE}' event per case_id",
                )
            )
        part_ids = sorted({row.model.part_id for row in rows})
        if len(part_ids) > 1:
            numbers = [row.number for row in rows]
            issues.append(
                DataIssue(
                    "arrivals.csv",
                    f"{_rows(numbers)}, column part_id",
                    ", ".join(part_ids),
                    f"one part_id per case ({case_id})",
                )
            )


def _check_process(bundle: Bundle, issues: list[DataIssue]) -> None:
    table = bundle.arrivals
    if table is None or table.failed_keys:
        return
    naive = [row.number for row in table.rows if row.model.timestamp.tzinfo is None]
    if naive and len(naive) < len(table.rows):
        issues.append(
            DataIssue(
                "arrivals.csv",
                f"{_rows(naive)}, column timestamp",
                "no UTC offset",
                "an offset like +09:00 on every timestamp, as "
                "on the other rows (naive and aware times cannot be ordered)",
            )
        )
        return
    count = sum(row.model.activity == ARRIVE for row in table.rows)
    if count < 2:
        issues.append(
            DataIssue(
                "arrivals.csv",
                "column activity",
                f"{count} '{ARRIVE}' events",
                f"at least 2 '{ARRIVE}' events (they define the arrival process)",
            )
        )
        return
    try:
        derive_arrival_process(table.models())
    except ValueError as error:
        issues.append(
            DataIssue(
                "arrivals.csv",
                "column timestamp",
                str(error),
                f"'{ARRIVE}' events at two or more different times",
            )
        )


_CHECKS: tuple[Callable[[Bundle, list[DataIssue]], None], ...] = (
    _check_unique_ids,
    _check_parents,
    _check_robot,
    _check_walkways,
    _check_safeguards,
    _check_required_kinds,
    _check_bins,
    _check_liftable,
    _check_fingers,
    _check_meshes,
    _check_arrival_refs,
    _check_cases,
    _check_process,
)
