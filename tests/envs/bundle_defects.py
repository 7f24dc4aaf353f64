"""Defects for generated factory bundles, each with the issue the loader must report.

Each function in `DEFECTS` edits a `Draft` and returns the `Expect`ation the loader's issues must
meet (file, a row or key fragment, an expectation fragment), or None if it did not apply;
`BYTE_DEFECTS` edit the serialised files (missing, non-UTF-8, emptied, hostile YAML or CSV, cut,
scrambled); `junk_file` makes bytes no bundle file should ever be.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import yaml

from .bundle_strategies import FILES, Draft, Expect, ident

# ------------------------------------------------------------------------------ defects

Defect = Callable[[random.Random, Draft], "Expect | None"]
NUMERIC = {
    "stations.csv": ["x", "y", "z", "rx", "ry", "rz", "size_x", "size_y", "size_z"],
    "parts.csv": ["size_x", "size_y", "size_z", "mass_kg", "friction"],
}


def _cell(index: int, column: str) -> str:
    """Location of a data cell: every row is one line, after the header line."""
    return f"row {index + 1} (line {index + 2}), column {column}"


def _pick(rng: random.Random, draft: Draft, name: str) -> tuple[int, dict[str, str]] | None:
    rows = draft.table(name)
    return None if not rows else (index := rng.randrange(len(rows)), rows[index])


def _cell_defect(values: list[str], what: str) -> Defect:
    def apply(rng: random.Random, draft: Draft) -> Expect | None:
        name = rng.choice(sorted(NUMERIC))
        index, row = _pick(rng, draft, name) or (0, {})
        column = rng.choice(NUMERIC[name])
        row[column] = rng.choice(values)
        return Expect(name, _cell(index, column), what) if row else None

    return apply


wrong_type = _cell_defect(["abc", "1.2.3", "[1]", "0x", "--1", "1,5", "½", "1 000"], "number")
not_finite = _cell_defect(["nan", "NaN", "inf", "-inf", "Infinity", "1e999"], "finite")
huge = _cell_defect(["1e308", "-1e300", "123456789012", "1e20", "-4e9"], "than")


def negative(rng: random.Random, draft: Draft) -> Expect | None:
    """A negative size or mass."""
    name = rng.choice(["stations.csv", "parts.csv"])
    index, row = _pick(rng, draft, name) or (0, {})
    column = rng.choice(["size_x", "size_y", "size_z"] + ["mass_kg"] * (name == "parts.csv"))
    row[column] = repr(-rng.uniform(1e-6, 1e6))
    return Expect(name, _cell(index, column), "greater than") if row else None


def unknown_kind(rng: random.Random, draft: Draft) -> Expect | None:
    index, row = _pick(rng, draft, "stations.csv") or (0, {})
    row["kind"] = rng.choice(["belt", "Robot", "ROBOT", "agv", "", "bins", "convey0r"])
    return Expect("stations.csv", _cell(index, "kind"), "'conveyor'" if row["kind"] else "value")


def dangling_parent(rng: random.Random, draft: Draft) -> Expect | None:
    index, row = _pick(rng, draft, "stations.csv") or (0, {})
    row["parent_id"] = ident(rng, {r.get("station_id", "") for r in draft.stations})
    return Expect("stations.csv", _cell(index, "parent_id"), "a station_id of stations.csv")


def parent_cycle(rng: random.Random, draft: Draft) -> Expect | None:
    a, b = rng.sample(range(len(draft.stations)), 2)
    draft.stations[a]["parent_id"] = draft.stations[b]["station_id"]
    draft.stations[b]["parent_id"] = draft.stations[a]["station_id"]
    return Expect("stations.csv", _cell(a, "parent_id"), "cycle")


def duplicate_id(rng: random.Random, draft: Draft) -> Expect | None:
    name = rng.choice(["stations.csv", "parts.csv"])
    rows = draft.table(name)
    rows.append(copy.deepcopy(rng.choice(rows)))
    column = "station_id" if name == "stations.csv" else "part_id"
    return Expect(name, _cell(len(rows) - 1, column), f"a unique {column}")


UNIT_RENAMES = {
    "stations.csv": [("x", "x_mm"), ("size_z", "size_z_cm"),
                     ("conveyor_speed_mps", "conveyor_speed_kph")],
    "parts.csv": [("mass_kg", "mass_g"), ("size_x", "size_x_in"), ("mass_kg", "mass_lb")],
}  # fmt: skip


def unknown_unit(rng: random.Random, draft: Draft) -> Expect | None:
    """A column in other units (mass_g, x_mm, ...), or a site.yaml key with a non-SI suffix."""
    name = rng.choice(["stations.csv", "parts.csv", "site.yaml"])
    if name == "site.yaml":
        key = rng.choice(["takt_time_min", "takt_time_ms"])
        draft.site[key] = draft.site.pop("takt_time_s", 6.0)
        return Expect("site.yaml", key, "known key")
    old, new = rng.choice(UNIT_RENAMES[name])
    for row in draft.table(name):
        row[new] = row.pop(old, "")
    return Expect(name, "header (line 1)", "SI units")


def empty_log(rng: random.Random, draft: Draft) -> Expect | None:
    """No arrival rows, or a single 'arrive' event."""
    draft.arrivals[:] = [r for r in draft.arrivals if r["activity"] == "arrive"][
        : rng.randint(0, 1)
    ]
    return Expect("arrivals.csv", "column activity", "at least 2 'arrive' events")


def bad_reference(rng: random.Random, draft: Draft) -> Expect | None:
    """An arrival naming a part or a station that does not exist (a cross-file rule)."""
    _, row = _pick(rng, draft, "arrivals.csv") or (0, {})
    column = rng.choice(["part_id", "station_id"])
    source = "parts.csv" if column == "part_id" else "stations.csv"
    row[column] = ident(rng, {r.get(column, "") for r in draft.table(source)})
    return Expect("arrivals.csv", f"column {column}", "from", local=False) if row else None


def bad_timestamp(rng: random.Random, draft: Draft) -> Expect | None:
    index, row = _pick(rng, draft, "arrivals.csv") or (0, {})
    row["timestamp"] = rng.choice(["yesterday", "1700000000", "2025-13-01T00:00:00", "06:00"])
    return Expect("arrivals.csv", _cell(index, "timestamp"), "ISO 8601") if row else None


def yaml_defect(rng: random.Random, draft: Draft) -> Expect | None:
    """A wrong type, NaN, a huge value, an unknown robot or key, or a missing key in site.yaml."""
    kind = rng.choice(["type", "nan", "huge", "model", "unknown", "missing", "robot_ref"])
    robot = draft.site.setdefault("robot", {})  # another defect may have removed it
    if kind == "type":
        draft.site["control_rate_hz"] = rng.choice(["fast", [30], {"hz": 30}, None])
        return Expect("site.yaml", "control_rate_hz", "")
    if kind == "nan":
        draft.site["takt_time_s"] = rng.choice([math.nan, math.inf, -math.inf])
        return Expect("site.yaml", "takt_time_s", "finite")
    if kind == "huge":
        key, value = rng.choice([("gravity_mps2", [0.0, 0.0, -1e300]), ("takt_time_s", 1e12)])
        draft.site[key] = value
        return Expect("site.yaml", key, "than")
    if kind == "model":
        robot["model"] = rng.choice(["ur5", "Panda", ""])
        return Expect("site.yaml", "robot.model", "'panda'")
    if kind == "unknown":
        robot["grippr"] = {"kind": "suction"}
        return Expect("site.yaml", "robot.grippr", "did you mean 'gripper'")
    if kind == "missing":
        keys = ("site_id", "name", "provenance", "robot", "safety")
        present = [k for k in keys if k in draft.site]
        if not present:  # other defects removed them all
            return None
        key = rng.choice(present)
        del draft.site[key]
        return Expect("site.yaml", key, "required")
    robot["station_id"] = draft.stations[1]["station_id"]  # not the robot
    return Expect("site.yaml", "robot.station_id", "a station of kind robot", local=False)


def part_defect(rng: random.Random, draft: Draft) -> Expect | None:
    """A bad colour, shape or mesh reference, or a part no bin accepts."""
    index, row = _pick(rng, draft, "parts.csv") or (0, {})
    kind = rng.choice(["color", "shape", "mesh", "mesh_path", "orphan"])
    if kind == "color":
        row["color"] = rng.choice(["green", "#12345", "#GGGGGG", "#1234567"])
        return Expect("parts.csv", _cell(index, "color"), "#RRGGBB")
    if kind == "shape":
        row["shape"] = rng.choice(["sphere", "Box", "cube"])
        return Expect("parts.csv", _cell(index, "shape"), "'box'")
    if kind == "mesh":
        row["shape"], row["mesh_uri"] = "mesh", ""
        return Expect("parts.csv", f"row {index + 1} (line {index + 2})", "mesh_uri")
    if kind == "mesh_path":
        row["shape"] = "mesh"
        row["mesh_uri"] = rng.choice(["../x.obj", "/etc/passwd", "assets/none.obj", "assets/x.txt",
                                      "C:\\x.obj"])  # fmt: skip
        return Expect("parts.csv", _cell(index, "mesh_uri"), "", local=False)
    draft.parts.append({**row, "part_id": ident(rng, {p["part_id"] for p in draft.parts})})
    return Expect(
        "parts.csv", _cell(len(draft.parts) - 1, "part_id"), "exactly one bin", local=False
    )


DEFECTS: tuple[Defect, ...] = (
    wrong_type, not_finite, negative, huge, unknown_kind, dangling_parent, parent_cycle,
    duplicate_id, unknown_unit, empty_log, bad_reference, bad_timestamp, yaml_defect, part_defect,
)  # fmt: skip


# ---------------------------------------------------------------------- layout defects
# Each turns a valid draft (bundle_strategies.valid_drafts: robot at the origin, belt along x at
# y 0.42 with its top at 0.1 m, bins around +x) into one whose files are valid but whose cell
# the task cannot work in; the finding must name the row (or key) and say what would fix it.


def _of_kind(draft: Draft, kind: str) -> list[int]:
    return [i for i, row in enumerate(draft.stations) if row.get("kind") == kind]


def _station_at(index: int) -> str:
    """Location of a finding about a whole station row."""
    return f"row {index + 1} (line {index + 2}), station"


def _world(draft: Draft, row: dict[str, str]) -> list[float]:
    """World position of a station of a valid draft (parents there are never turned)."""
    position = [float(row[axis]) for axis in "xyz"]
    parent = next((r for r in draft.stations if r["station_id"] == row.get("parent_id")), None)
    if parent is None:
        return position
    return [a + b for a, b in zip(position, _world(draft, parent), strict=True)]


def _to_floor(row: dict[str, str], x: float, y: float) -> None:
    row.update(parent_id="", x=repr(x), y=repr(y), z=repr(float(row["size_z"]) / 2))


def _zone(draft: Draft, low: list[float], high: list[float]) -> None:
    zones = draft.site["safety"].setdefault("keep_out_zones", [])
    zones.append({"name": f"zone{len(zones) + 2}", "min_xyz": low, "max_xyz": high})


def bin_out_of_reach(rng: random.Random, draft: Draft) -> Expect:
    """A bin 5 m from the robot."""
    index = _of_kind(draft, "bin")[-1]
    _to_floor(draft.stations[index], 5.0, rng.uniform(-1.0, 1.0))
    return Expect("stations.csv", _station_at(index), "a drop point robot", local=False)


def belt_out_of_reach(rng: random.Random, draft: Draft) -> Expect:
    """The conveyor 3 m from the robot."""
    index = _of_kind(draft, "conveyor")[0]
    draft.stations[index]["y"] = repr(rng.choice([3.0, -3.0]))
    return Expect("stations.csv", _station_at(index), "a belt within reach", local=False)


def belt_below_floor(rng: random.Random, draft: Draft) -> Expect:
    index = _of_kind(draft, "conveyor")[0]
    draft.stations[index]["z"] = repr(rng.choice([-0.3, -0.06]))  # few: the reach cache serves
    where = _cell(index, "z")
    return Expect("stations.csv", where, "on or above the floor", local=False)


def bin_below_floor(rng: random.Random, draft: Draft) -> Expect:
    index = _of_kind(draft, "bin")[-1]
    draft.stations[index]["z"] = repr(rng.uniform(-0.5, -0.1))
    where = _cell(index, "z")
    return Expect("stations.csv", where, "on or above the floor", local=False)


def bin_on_the_belt(rng: random.Random, draft: Draft) -> Expect:
    """A bin standing inside the conveyor: the later of the two rows names the other."""
    index, belt = _of_kind(draft, "bin")[-1], _of_kind(draft, "conveyor")[0]
    _to_floor(draft.stations[index], rng.choice([-0.3, 0.0, 0.3]), 0.42)
    where = _station_at(max(index, belt))
    return Expect("stations.csv", where, "stations apart", local=False)


def five_bins(rng: random.Random, draft: Draft) -> Expect:
    """More bins than the observation has part-type slots (each with a part of its own)."""
    bins = _of_kind(draft, "bin")
    while len(bins) < 5:
        part = copy.deepcopy(rng.choice(draft.parts))
        part["part_id"] = ident(rng, {p["part_id"] for p in draft.parts})
        draft.parts.append(part)
        row = copy.deepcopy(draft.stations[bins[0]])
        row["station_id"] = ident(rng, {r["station_id"] for r in draft.stations})
        row["accepts"] = part["part_id"]
        _to_floor(row, -0.45, 0.1 - 0.25 * len(bins))
        draft.stations.append(row)
        bins.append(len(draft.stations) - 1)
    where = _cell(bins[4], "kind")
    return Expect("stations.csv", where, "at most 4 bins", local=False)


def belt_above_bins(rng: random.Random, draft: Draft) -> Expect:
    """The belt raised, so the bin openings are far below its top: dropped parts are lost."""
    index, first_bin = _of_kind(draft, "conveyor")[0], _of_kind(draft, "bin")[0]
    draft.stations[index]["z"] = repr(rng.choice([0.28, 0.32]))
    where = _cell(first_bin, "z")
    return Expect("stations.csv", where, "below the belt top", local=False)


def bin_behind_the_robot(rng: random.Random, draft: Draft) -> Expect:
    """A bin across the robot from the belt: every carry passes through the robot's base."""
    index = _of_kind(draft, "bin")[-1]
    _to_floor(draft.stations[index], rng.choice([-0.02, 0.0, 0.02]), -0.35)
    return Expect("stations.csv", _station_at(index), "straight carry from the belt", local=False)


def drop_point_in_keep_out(rng: random.Random, draft: Draft) -> Expect:
    index = _of_kind(draft, "bin")[0]
    row = draft.stations[index]
    x, y, z = _world(draft, row)
    drop = [x, y, z + float(row["size_z"]) / 2 + 0.06]
    _zone(draft, [v - 0.05 for v in drop], [v + 0.05 for v in drop])
    where = _station_at(index)
    return Expect("stations.csv", where, "out of the keep-out zone", local=False)


def belt_in_keep_out(rng: random.Random, draft: Draft) -> Expect:
    _zone(draft, [-1.0, 0.25, 0.0], [1.0, 0.6, rng.uniform(0.3, 2.0)])
    index = _of_kind(draft, "conveyor")[0]
    return Expect("stations.csv", _station_at(index), "a belt within reach", local=False)


def keep_out_wall(rng: random.Random, draft: Draft) -> Expect:
    """A thin keep-out zone between the belt and the bins: no straight carry gets through."""
    y = rng.uniform(0.26, 0.28)
    _zone(draft, [-1.0, y, 0.0], [1.0, y + 0.01, 2.0])
    index = _of_kind(draft, "bin")[0]
    return Expect("stations.csv", _station_at(index), "straight carry from the belt", local=False)


def tilted_station(rng: random.Random, draft: Draft) -> Expect:
    """A bin, the belt or the robot with a roll or pitch the cell would ignore or misjudge."""
    index = rng.choice(_of_kind(draft, "bin") + _of_kind(draft, "conveyor") + [0])
    column = rng.choice(["rx", "ry"])
    draft.stations[index][column] = repr(rng.choice([-1, 1]) * rng.uniform(0.01, 3.1))
    where = _cell(index, column)
    return Expect("stations.csv", where, f"{column} = 0 on a", local=False)


def too_little_time(rng: random.Random, draft: Draft) -> Expect:
    """A time limit shorter than the parts take to arrive."""
    limit = rng.uniform(0.05, 0.5)
    draft.site["tasks"] = [{"kind": "conveyor-sort", "parts_per_episode": 3, "time_limit_s": limit}]
    return Expect(
        "site.yaml", "tasks[conveyor-sort].time_limit_s", "every part can be sorted", local=False
    )


def gravity_up(rng: random.Random, draft: Draft) -> Expect:
    draft.site["gravity_mps2"] = [0.0, 0.0, rng.choice([0.0, 9.81])]
    return Expect("site.yaml", "gravity_mps2", "pointing down", local=False)


LAYOUT_DEFECTS: tuple[Defect, ...] = (
    bin_out_of_reach, belt_out_of_reach, belt_below_floor, bin_below_floor, bin_on_the_belt,
    five_bins, belt_above_bins, bin_behind_the_robot, drop_point_in_keep_out, belt_in_keep_out,
    keep_out_wall, tilted_station, too_little_time, gravity_up,
)  # fmt: skip


# ------------------------------------------------------------------------ byte defects

ByteDefect = Callable[[random.Random, dict[str, bytes]], "Expect | None"]


def missing_file(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    name = rng.choice(FILES)
    files.pop(name, None)
    return Expect(name, "", "this file in the bundle")


def _present(rng: random.Random, files: dict[str, bytes]) -> str | None:
    names = sorted(set(files) & set(FILES))
    return rng.choice(names) if names else None


def not_utf8(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    name = _present(rng, files)
    if name is None:
        return None
    data, at = files[name], rng.randint(0, len(files[name]))
    files[name] = data[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xe9t\xe9", b"\x80"]) + data[at:]
    return Expect(name, "line ", "UTF-8")


def emptied(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    name = _present(rng, files)
    if name is None:
        return None
    files[name] = rng.choice([b"", b"\n\n", b"   ", b"\xef\xbb\xbf"])
    return Expect(name, "", "content")


def truncated(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    name = _present(rng, files)
    if name is None:
        return None
    files[name] = files[name][: rng.randint(0, len(files[name]))]
    return None  # may still be valid (a cut after the last row that matters)


def scrambled(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    name = _present(rng, files)
    if name is None:
        return None
    data = bytearray(files[name])
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    files[name] = bytes(data)
    return None


def benign(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    """Changes the format allows: CRLF line ends, a BOM, blank lines, an unrelated asset."""
    name = _present(rng, files) or "assets/readme.txt"
    how = rng.choice(["crlf", "bom", "blank", "asset"])
    if how == "crlf":
        files[name] = files[name].replace(b"\n", b"\r\n")
    elif how == "bom":
        files[name] = b"\xef\xbb\xbf" + files[name]
    elif how == "blank" and name.endswith(".csv"):  # a blank line after the header is fine too
        files[name] = files[name] + b"\n\n"
    else:
        files["assets/readme.txt"] = b"not a mesh"
    return None


_BOMB = "".join(
    f"{name}: &{name} [{','.join([prev] * 9)}]\n"
    for name, prev in zip(
        "abcdefgh", ['"x"', "*a", "*b", "*c", "*d", "*e", "*f", "*g"], strict=True
    )
).encode()  # 9^8 = 43 million strings once expanded
HOSTILE_YAML = [
    (b"deep: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "at most 32 levels"),
    (b"deep: " + b"- " * 50_000 + b"x\n", "valid YAML"),
    (b"deep: " + b"{a: " * 40 + b"1" + b"}" * 40 + b"\n", "at most 32 levels"),
    (_BOMB, "after expanding aliases"),
    (b"big: 1" + b"0" * 5000 + b"\n", "at most 4096 characters"),
    (b"cmd: !!python/object/apply:os.system [ls]\n", "valid YAML"),
    (b"when: 2025-02-30\n", "valid YAML values"),
    (b"nul: \x00\n", "valid YAML"),
]


def hostile_yaml(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    """Documents built to crash or stall a YAML reader: nesting, alias bombs, huge ints, tags."""
    text, what = rng.choice(HOSTILE_YAML)
    if "site.yaml" not in files:
        return None
    files["site.yaml"] = files["site.yaml"].rstrip(b"\n") + b"\n" + text
    return Expect("site.yaml", "line ", what)


def hostile_csv(rng: random.Random, files: dict[str, bytes]) -> Expect | None:
    """A field beyond the CSV reader's limit, or a quote that never closes."""
    name = rng.choice(FILES[1:])
    if name not in files:
        return None
    row = rng.choice([b"x" * 200_000, b'"never closed,1,2\n3'])
    files[name] = files[name].rstrip(b"\n") + b"\n" + row + b"\n"
    return Expect(name, "line ", "valid CSV")


BYTE_DEFECTS: tuple[ByteDefect, ...] = (
    missing_file,
    not_utf8,
    emptied,
    hostile_yaml,
    hostile_csv,
    truncated,
    scrambled,
)
DESTRUCTIVE = (truncated, scrambled)


# -------------------------------------------------------------------------- arbitrary files

_JUNK_CELLS = ["", "nan", "1e308", "-1", "robot", "bin", '"', "a,b", "\xff", "|", "#808080",
               "2025-03-03T06:00:00", "arrive", "conv1", "0", "1e-320"]  # fmt: skip
_JUNK_LEAVES = [None, True, 0, -1, 1e308, math.nan, "", "x", "panda", [], {}]


def junk_file(rng: random.Random) -> bytes:
    """Bytes no bundle file should ever be: random bytes, CSV-ish rows or YAML-ish trees."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        rows = [[rng.choice(_JUNK_CELLS) for _ in range(rng.randint(0, 16))]
                for _ in range(rng.randint(0, 12))]  # fmt: skip
        return "\n".join(",".join(r) for r in rows).encode()
    if kind == 2:
        return yaml.safe_dump(_junk_tree(rng, 4)).encode()
    return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 200))).encode()


def _junk_tree(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(_JUNK_LEAVES)
    if rng.random() < 0.5:
        return [_junk_tree(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    keys = ["site_id", "robot", "model", "safety", "name", "x", "physics", "gravity_mps2"]
    return {rng.choice(keys): _junk_tree(rng, depth - 1) for _ in range(rng.randint(0, 4))}
