"""Hypothesis strategies for factory bundles: valid drafts (the defects are in bundle_defects).

A `Draft` is a bundle as Python data (the site.yaml mapping, CSV rows as dicts). `valid_drafts()`
always yields bundles the loader must accept. An `Expect` is an issue a defective bundle must
raise. Everything stays in memory: the loader reads ``dict[name, bytes]`` through
`envs.factory.loader.load_snapshot`.

Cost: Hypothesis draws the structure (how many parts and bins, which defect, which file), so a
failure shrinks to a small bundle; the numbers, names and rows come from a `random.Random`
seeded by one drawn integer. Drawing every number through Hypothesis costs ~15 ms a bundle, this
costs ~1 ms, which is what lets CI try 10,000 bundles.
"""

from __future__ import annotations

import csv
import io
import math
import random
import string
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml
from hypothesis import strategies as st

FILES = ("site.yaml", "stations.csv", "parts.csv", "arrivals.csv")
MAX_BINS = 4  # envs.conveyor_sort.MAX_BINS: the observation has one part-type slot per bin
HEADERS = {
    "stations.csv": ["station_id", "kind", "parent_id", "x", "y", "z", "rx", "ry", "rz", "size_x",
                     "size_y", "size_z", "conveyor_speed_mps", "payload_kg", "accepts"],
    "parts.csv": ["part_id", "name", "shape", "size_x", "size_y", "size_z", "mass_kg", "friction",
                  "color", "mesh_uri"],
    "arrivals.csv": ["timestamp", "case_id", "part_id", "station_id", "activity"],
}  # fmt: skip
NAMES = ["control board", "Résistance 10 kΩ", "電解コンデンサ", "part, with commas", 'quote "x"',
         "🔧 bracket", "  padded  ", "x" * 60, "line\u2028sep", "tab\there"]  # fmt: skip
_ID_HEAD = string.ascii_letters + string.digits
_ID_TAIL = _ID_HEAD + "_.:-"


@dataclass
class Draft:
    """A bundle as data; `files()` serialises it."""

    site: dict[str, Any]
    stations: list[dict[str, str]]
    parts: list[dict[str, str]]
    arrivals: list[dict[str, str]]
    extra: dict[str, bytes] = field(default_factory=dict)

    def table(self, name: str) -> list[dict[str, str]]:
        return {"stations.csv": self.stations, "parts.csv": self.parts}.get(name, self.arrivals)

    def files(self) -> dict[str, bytes]:
        out = {"site.yaml": yaml.safe_dump(self.site, sort_keys=False, allow_unicode=True).encode()}
        for name in FILES[1:]:
            out[name] = _csv(self.table(name), HEADERS[name])
        return {**out, **self.extra}


def _csv(rows: list[dict[str, str]], default_header: list[str]) -> bytes:
    header = list(dict.fromkeys([k for row in rows for k in row])) or default_header
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return buffer.getvalue().encode()


@dataclass(frozen=True)
class Expect:
    """An issue the loader must report: its file, and fragments of its location and expectation.

    ``local`` says the defect is found from its own file alone, so that file is named whatever
    else is wrong with the bundle (cross-file defects can be masked by a broken other file).
    """

    file: str
    where: str
    what: str
    local: bool = True

    def met_by(self, issue: Any) -> bool:
        return (
            issue.file == self.file
            and self.where in issue.location
            and self.what.lower() in issue.expected.lower()
        )


def ident(rng: random.Random, avoid: Collection[str] = ()) -> str:
    """A random station/part id (1-15 characters) not in ``avoid``."""
    while True:
        text = rng.choice(_ID_HEAD) + "".join(rng.choices(_ID_TAIL, k=rng.randint(0, 14)))
        if text not in avoid:
            return text


def number(rng: random.Random, low: float, high: float) -> str:
    """A number in [low, high] written in one of the ways a spreadsheet export writes them."""
    value = rng.uniform(low, high)
    style = rng.randrange(4)
    return (repr(value), f"{value:.6f}", f"{value:e}", f" {value!r} ")[style]


# ------------------------------------------------------------------------- valid drafts


# Where valid drafts put things. The geometry the reach checks see is fixed (the robot at the
# origin, one belt, bins on an arc or on a table), so the reach probe's per-point cache makes
# 1,500 bundles cost little; layout_drafts() varies it. Every position is in reach of every model.
BELT = ((0.0, 0.42, 0.05), (1.6, 0.24, 0.1))
FLOOR_BINS = ((0.483, 0.129), (0.483, -0.129), (0.354, -0.354), (0.129, -0.483))
TABLE = ((0.42, -0.06, 0.02), (0.26, 0.70, 0.04))
TABLE_BINS = (0.22, 0.0, -0.22)  # y relative to the table; a 4th bin stands on the floor
BIN_SIZE = (0.2, 0.2, 0.12)
PART_HEIGHTS = (0.02, 0.04, 0.06)
ENTRY_TO_WINDOW_M = 0.3  # the farthest a part rides before any robot's pick window starts


@st.composite
def valid_drafts(draw: st.DrawFn) -> Draft:
    """Bundles the loader must accept: 1-6 parts in 1-4 bins, 2-8 arrivals, optional extras."""
    n_parts = draw(st.integers(1, 6))
    n_bins = draw(st.integers(1, min(n_parts, MAX_BINS)))
    on_table, camera, extreme = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    ids: list[str] = []
    while len(ids) < n_parts + n_bins + 4:
        ids.append(ident(rng, set(ids)))
    robot, conveyor, table, fixture = ids[:4]
    bins, part_ids = ids[4 : 4 + n_bins], ids[4 + n_bins :]
    stations = [_placed(rng, robot, "robot", (0.0, 0.0, 0.0)), _conveyor(rng, conveyor)]
    if on_table:  # the bins stand on a table and are placed relative to it
        stations.append(_placed(rng, table, "table", *TABLE))
    for i, bin_id in enumerate(bins):
        row = _bin(rng, bin_id, i, table if on_table else None)
        row["accepts"] = "|".join(p for j, p in enumerate(part_ids) if j % n_bins == i)
        stations.append(row)
    if camera:
        stations.append(_station(rng, ids[-1] + "-cam", "camera", 1.2, 0.0, 1.0) | {"ry": "0.64"})
    if extreme:  # values at the schema's bounds: a fixture far out, up to 20 m, any angle
        stations.append(_extreme_fixture(rng, fixture))
        stations[1]["conveyor_speed_mps"] = number(rng, 0.01, 5.0)
    rest = stations[1:]
    rng.shuffle(rest)  # rows in any order; the robot first is not required either
    parts = [_part(rng, p) for p in part_ids]
    arrivals, longest_gap = _arrivals(rng, part_ids, conveyor, robot)
    speed = float(stations[1]["conveyor_speed_mps"])
    site = _site(rng, robot, longest_gap + ENTRY_TO_WINDOW_M / speed)
    return Draft(site, [stations[0], *rest], parts, arrivals)


def exact(rng: random.Random, value: float) -> str:
    """A given number, written in one of the ways a spreadsheet export writes them."""
    return (repr(value), f"{value:.6f}", f"{value:e}", f" {value!r} ")[rng.randrange(4)]


def _placed(
    rng: random.Random,
    sid: str,
    kind: str,
    place: tuple[float, float, float],
    size: tuple[float, float, float] | None = None,
) -> dict[str, str]:
    row = {"station_id": sid, "kind": kind}
    for axis, value in zip("xyz", place, strict=True):
        row[axis] = exact(rng, value)
    for axis, extent in zip("xyz", size or (), strict=False):
        row[f"size_{axis}"] = exact(rng, extent)
    return row


def _bin(rng: random.Random, sid: str, index: int, table: str | None) -> dict[str, str]:
    if table and index < len(TABLE_BINS):
        place = (0.0, TABLE_BINS[index], TABLE[1][2] / 2 + BIN_SIZE[2] / 2)
    else:
        place, table = (*FLOOR_BINS[index], BIN_SIZE[2] / 2), None
    row = _placed(rng, sid, "bin", place, BIN_SIZE)
    for axis in "xy":  # the footprint may vary: reach is checked at the opening's centre
        row[f"size_{axis}"] = number(rng, 0.18, 0.2)
    row["rz"] = number(rng, -0.03, 0.03)
    row["parent_id"] = table or ""
    return row


def _station(
    rng: random.Random, sid: str, kind: str, x: float, y: float, z: float
) -> dict[str, str]:
    dx, dy, dz = (rng.uniform(-0.02, 0.02) for _ in range(3))
    return {"station_id": sid, "kind": kind, "x": repr(x + dx), "y": repr(y + dy),
            "z": repr(z + abs(dz))}  # fmt: skip


def _extreme_fixture(rng: random.Random, sid: str) -> dict[str, str]:
    """A fixture with values near the schema's bounds, out in the hall (touching nothing)."""
    row = {"station_id": sid, "kind": "fixture", "payload_kg": number(rng, 0, 10_000)}
    sizes = [rng.uniform(1e-3, 20.0) for _ in range(3)]
    radius = math.dist((0, 0, 0), sizes) / 2
    distance, heading = rng.uniform(radius + 2.0, 95.0), rng.uniform(0, 2 * math.pi)
    height = radius + rng.uniform(0, 50)  # the lowest corner is above the floor
    place = (distance * math.cos(heading), distance * math.sin(heading), height)
    for axis, value, size in zip("xyz", place, sizes, strict=True):
        row[axis] = repr(value)
        row[f"r{axis}"] = number(rng, -6.2832, 6.2832)
        row[f"size_{axis}"] = repr(size)
    return row


def _conveyor(rng: random.Random, sid: str) -> dict[str, str]:
    row = _placed(rng, sid, "conveyor", *BELT)
    row["rz"] = exact(rng, 0.0)
    row["conveyor_speed_mps"] = number(rng, 0.05, 0.3)
    return row


def _part(rng: random.Random, pid: str) -> dict[str, str]:
    shape = rng.choice(["box", "cylinder"])
    size = [rng.uniform(0.02, 0.09), rng.uniform(0.02, 0.09), rng.choice(PART_HEIGHTS)]
    if shape == "cylinder":
        size[1] = size[0]
    return {"part_id": pid, "name": rng.choice(NAMES), "shape": shape,
            "size_x": repr(size[0]), "size_y": repr(size[1]), "size_z": repr(size[2]),
            "mass_kg": number(rng, 0.01, 1.0), "friction": number(rng, 0.3, 1.2),
            "color": rng.choice(["", "#1E7A3C", "#d9a521ff", "#808080"]),
            "mesh_uri": ""}  # fmt: skip


def _site(rng: random.Random, robot: str, slowest_s: float) -> dict[str, Any]:
    """site.yaml; ``slowest_s``: the longest gap plus a part's ride to the pick window."""
    slug = rng.choice("abcdefghjkz019") + "".join(rng.choices("abcxyz019_-", k=rng.randint(0, 20)))
    site: dict[str, Any] = {
        "site_id": slug,
        "name": rng.choice(NAMES),
        "provenance": {"source": rng.choice(["synthetic", "measured", "imported"])},
        "control_rate_hz": rng.choice([24, 30, 40, 48, 60, 80, 120, 240]),
        "robot": {"model": rng.choice(["panda", "kuka_iiwa", "xarm6"]), "station_id": robot},
        "safety": {"max_tcp_speed_mps": rng.uniform(0.2, 3.0),
                   "max_contact_force_n": rng.uniform(20.0, 500.0)},
        "takt_time_s": rng.uniform(0.5, 60.0),
    }  # fmt: skip
    parts = rng.randint(1, 4)
    least = 0.5 + (parts - 1) * slowest_s + 3.0  # time for the last part to arrive and be sorted
    if rng.random() < 0.5 or 0.5 + 2 * slowest_s + 3.0 >= 40.0:  # else the defaults (3, 40 s)
        limit = least + rng.uniform(1, 30)
        site["tasks"] = [
            {"kind": "conveyor-sort", "parts_per_episode": parts, "time_limit_s": limit}
        ]
    if rng.random() < 0.5:
        site["sensors"] = {"position_noise_m": rng.uniform(0, 0.01),
                           "latency_steps": rng.randint(0, 3),
                           "dropout_prob": rng.uniform(0, 0.5)}  # fmt: skip
    if rng.random() < 0.5:  # behind the belt's upstream end, clear of every task point
        low = [rng.uniform(-2.5, -1.5), rng.uniform(-2, 1), rng.uniform(-2, 1)]
        high = [v + rng.uniform(0.01, 1) for v in low]
        high[0] = min(high[0], -1.0)
        site["safety"]["keep_out_zones"] = [{"name": "zone1", "min_xyz": low, "max_xyz": high}]
    return site


def _arrivals(
    rng: random.Random, parts: list[str], conveyor: str, robot: str
) -> tuple[list[dict[str, str]], float]:
    """The log's rows, and its longest gap between arrivals (s)."""
    n = rng.randint(2, 8)
    zone = timezone(timedelta(hours=rng.randint(-12, 14))) if rng.random() < 0.5 else None
    start = datetime(2025, 3, 3, 6, 0, tzinfo=zone)
    gaps = [rng.choice([0.0, rng.uniform(0.1, 30.0)]) for _ in range(n - 1)]
    gaps[rng.randrange(n - 1)] += 0.5  # at least two different times
    rows = []
    for i in range(n):
        when, part = start + timedelta(seconds=sum(gaps[:i])), rng.choice(parts)
        rows.append({"timestamp": when.isoformat(), "case_id": f"C{i}", "part_id": part,
                     "station_id": conveyor, "activity": "arrive"})  # fmt: skip
        if rng.random() < 0.5:
            later = (when + timedelta(seconds=2)).isoformat()
            rows.append({"timestamp": later, "case_id": f"C{i}", "part_id": part,
                         "station_id": robot, "activity": "pick"})  # fmt: skip
    rng.shuffle(rows)
    return rows, max(gaps)
