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
    stations = [_station(rng, robot, "robot", 0.0, 0.0, 0.0), _conveyor(rng, conveyor)]
    if on_table:  # the bins stand on a table and are placed relative to it
        stations.append(_box(rng, table, "table", (0.42, -0.1, 0.02), (0.3, 0.8, 0.04)))
    for i, bin_id in enumerate(bins):
        y = 0.16 - 0.22 * i
        place = (0.0, y + 0.1, 0.08) if on_table else (0.42, y, 0.06)
        row = _box(rng, bin_id, "bin", place, (0.2, 0.2, 0.12))
        row["parent_id"] = table if on_table else ""
        row["accepts"] = "|".join(p for j, p in enumerate(part_ids) if j % n_bins == i)
        stations.append(row)
    if camera:
        stations.append(_station(rng, ids[-1] + "-cam", "camera", 1.2, 0.0, 1.0) | {"ry": "0.64"})
    if extreme:  # values at the schema's bounds: a fixture anywhere, up to 100 m, any angle
        stations.append(_extreme_fixture(rng, fixture))
        stations[1]["conveyor_speed_mps"] = number(rng, 0.0001, 5.0)
    rest = stations[1:]
    rng.shuffle(rest)  # rows in any order; the robot first is not required either
    parts = [_part(rng, p) for p in part_ids]
    arrivals = _arrivals(rng, part_ids, conveyor, robot)
    return Draft(_site(rng, robot), [stations[0], *rest], parts, arrivals)


def _station(
    rng: random.Random, sid: str, kind: str, x: float, y: float, z: float
) -> dict[str, str]:
    dx, dy, dz = (rng.uniform(-0.02, 0.02) for _ in range(3))
    return {"station_id": sid, "kind": kind, "x": repr(x + dx), "y": repr(y + dy),
            "z": repr(z + abs(dz))}  # fmt: skip


def _box(
    rng: random.Random,
    sid: str,
    kind: str,
    place: tuple[float, float, float],
    size: tuple[float, float, float],
) -> dict[str, str]:
    row = _station(rng, sid, kind, *place)
    for axis, extent in zip("xyz", size, strict=True):
        row[f"size_{axis}"] = number(rng, extent * 0.9, extent * 1.1)
    row["rz"] = number(rng, -0.05, 0.05)
    return row


def _extreme_fixture(rng: random.Random, sid: str) -> dict[str, str]:
    row = {"station_id": sid, "kind": "fixture", "payload_kg": number(rng, 0, 10_000)}
    for axis in "xyz":
        row[axis] = number(rng, -100.0, 100.0)
        row[f"r{axis}"] = number(rng, -6.2832, 6.2832)
        row[f"size_{axis}"] = number(rng, 1e-3, 100.0)
    return row


def _conveyor(rng: random.Random, sid: str) -> dict[str, str]:
    row = _box(rng, sid, "conveyor", (0.0, 0.42, 0.05), (1.6, 0.24, 0.1))
    row["conveyor_speed_mps"] = number(rng, 0.05, 0.3)
    return row


def _part(rng: random.Random, pid: str) -> dict[str, str]:
    shape = rng.choice(["box", "cylinder"])
    size = [rng.uniform(0.02, 0.09) for _ in range(3)]
    if shape == "cylinder":
        size[1] = size[0]
    return {"part_id": pid, "name": rng.choice(NAMES), "shape": shape,
            "size_x": repr(size[0]), "size_y": repr(size[1]), "size_z": repr(size[2]),
            "mass_kg": number(rng, 0.01, 1.0), "friction": number(rng, 0.3, 1.2),
            "color": rng.choice(["", "#1E7A3C", "#d9a521ff", "#808080"]),
            "mesh_uri": ""}  # fmt: skip


def _site(rng: random.Random, robot: str) -> dict[str, Any]:
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
    if rng.random() < 0.5:
        site["task"] = {"parts_per_episode": rng.randint(1, 4), "time_limit_s": rng.uniform(1, 30)}
    if rng.random() < 0.5:
        site["sensors"] = {"position_noise_m": rng.uniform(0, 0.01),
                           "latency_steps": rng.randint(0, 3),
                           "dropout_prob": rng.uniform(0, 0.5)}  # fmt: skip
    if rng.random() < 0.5:
        low = [rng.uniform(-2, 1) for _ in range(3)]
        high = [v + rng.uniform(0.01, 1) for v in low]
        site["safety"]["keep_out_zones"] = [{"name": "zone1", "min_xyz": low, "max_xyz": high}]
    return site


def _arrivals(
    rng: random.Random, parts: list[str], conveyor: str, robot: str
) -> list[dict[str, str]]:
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
    return rows
