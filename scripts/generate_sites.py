"""Write the three packaged factory bundles into ``envs/site_data/<site_id>/``.

The data is synthetic: a fixed seed per site makes every run byte-for-byte identical, so the
committed bundles can be checked against a fresh run (``tests/envs/test_sites.py``). To tune a
site, edit `SITES` below and re-run::

    .venv/bin/python scripts/generate_sites.py            # rewrite envs/site_data/
    .venv/bin/python scripts/generate_sites.py --out DIR  # write somewhere else

One site (`AML_SITE`) is also written as an AutomationML (CAEX 3.0) file, ``<site_id>.aml``
beside the bundles: its layout, parts and robot, by the same writer as ``testbed sites
export-aml`` (``docs/automationml.md``). Its settings and production log are the bundle's
site.yaml and arrivals.csv, so ``testbed sites import-aml`` of it, with those as side files,
builds the same cell (``tests/envs/test_automationml.py``).

The layout is the same shape at every site (robot at the origin, conveyor along +x at
y=0.42, bins in a row at x=0.42 beside it, a camera looking at the cell) so one controller
interface works everywhere; the numbers differ. The schema is documented in
``docs/factory_bundle.md``.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

GENERATOR = "scripts/generate_sites.py"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "envs" / "site_data"

# Shared layout (world frame, z up, metres). Per-site numbers are in SITES.
CONVEYOR = {"id": "conv1", "xyz": (0.0, 0.42, 0.05), "size": (1.6, 0.24, 0.1)}
# Bins stand in a row beside the belt, in front of the robot, where all three arms reach.
BIN_X, BIN_Z, BIN_SIZE = 0.42, 0.06, (0.2, 0.2, 0.12)
# Peg-in-hole: the hole fixture and the peg nest stand on the robot's right (-y), clear of the
# bins; the hole's fit (clearance, depth, chamfer) and the peg are per site (SITES "peg_in_hole"),
# and a site may move them ("peg_fixtures_xy": where its robot works best).
HOLE_FIXTURE = {"id": "hole1", "xyz": (-0.16, -0.5, 0.06), "size": (0.13, 0.13, 0.12)}
PEG_NEST = {"id": "nest1", "xyz": (-0.02, -0.5, 0.06), "size": (0.08, 0.08, 0.12)}
CAMERA_XYZ = (1.2, 0.0, 1.0)
CAMERA_TARGET = (0.0, 0.0, 0.1)
# cam2: over the far side of the belt, looking back at its pick window (the parts, and the tool
# coming down on them, in view; the pixels-in policy's camera, docs/cameras.md).
PICK_CAMERA_XYZ = (0.05, 0.85, 0.6)
PICK_CAMERA_TARGET = (0.05, 0.42, 0.1)

# The site also shipped as a CAEX file, and that file's (fixed, so reruns are identical) stamp.
AML_SITE = "kr-changwon"
AML_WRITTEN_AT = "2025-03-03T06:00:00+09:00"

# Whose safety rules each site follows (envs/safety/jurisdictions: docs/safety.md).
JURISDICTIONS = {"kr-changwon": "KR", "jp-nagoya": "JP", "us-austin": "US"}
# A restocker who walks up beside the bins and back (docs/safety.md): at us-austin, whose
# profile records violations without stopping the robot, so every policy's episodes there are
# checked against the co-worker rules while the sorting itself is unchanged.
COWORKER: dict[str, Any] = {
    "sites": ("us-austin",),
    # walks along world +y (rz 90 degrees) from y = -1.3 to y = -0.1, 1.2 m in front of the base
    "walkway": {"id": "walk1", "xyz": (1.2, -0.7, 0.005), "rz": 1.570796,
                "size": (1.2, 0.6, 0.01)},
    "person": {"name": "restocker", "walkway": "walk1", "speed_mps": 1.0,
               "first_arrival_s": 8.0, "mean_gap_s": 15.0, "dwell_s": 4.0},
}  # fmt: skip

# One entry per site. Parts: (part_id, name, shape, (size_x, size_y, size_z) in m, mass_kg,
# friction, colour, share of arrivals). Each part gets its own bin, in this order.
# Kept compact (formatter off) so the numbers are easy to scan and tune.
# fmt: off
SITES: dict[str, dict[str, Any]] = {
    "kr-changwon": {
        "name": "Changwon electronics line (KR)",
        "seed": 1101,
        "start": "2025-03-03T06:00:00+09:00",
        "robot": "panda",
        "payload_kg": 3.0,
        "gripper": {"kind": "suction", "max_force_n": 60.0, "capture_distance_m": 0.012},
        "controller": {"max_ee_speed_mps": 0.8},
        "conveyor_speed_mps": 0.20,
        "control_rate_hz": 30,
        "sensors": {},
        "policy_link": {},
        "safety": {"max_tcp_speed_mps": 1.5, "max_contact_force_n": 80.0, "keep_out_zones": []},
        "takt_time_s": 6.0,
        "task": {"parts_per_episode": 3, "time_limit_s": 35.0},
        # Loose fit with a lead-in: electronics press-fit pins, fed in a tray pocket with 3 mm
        # of play.
        "peg_in_hole": {"peg_size_m": [0.03, 0.03, 0.07], "peg_mass_kg": 0.05,
                        "clearance_m": 0.0015, "hole_depth_m": 0.03, "chamfer_m": 0.003,
                        "peg_pose_noise_m": 0.003, "time_limit_s": 15.0},
        # Palletize: light electronics cartons, two interlocked layers of four (2x2, then a
        # row of four turned 90 degrees); fast belt.
        "pallet": {"xyz": (-0.4, 0.17, 0.05), "rz": 2.74, "size": (0.24, 0.16, 0.1)},
        "palletize": {"carton": {"size_m": [0.1, 0.05, 0.05], "mass_kg": 0.3,
                                 "color": "#C8A165"},
                      "layers": [[[-0.0525, -0.0275, 0.0], [0.0525, -0.0275, 0.0],
                                  [-0.0525, 0.0275, 0.0], [0.0525, 0.0275, 0.0]],
                                 [[-0.0825, 0.0, 1.570796], [-0.0275, 0.0, 1.570796],
                                  [0.0275, 0.0, 1.570796], [0.0825, 0.0, 1.570796]]],
                      "time_limit_s": 60.0},
        "inter_arrival_s": (5.0, 9.0),
        "n_arrivals": 200,
        "bin_y": (0.12, -0.10, -0.32),
        "parts": [
            ("KR-PCB-100", "control board PCB", "box", (0.10, 0.07, 0.016), 0.06, 0.8,
             "#1E7A3C", 0.45),
            ("KR-RLY-200", "relay module", "box", (0.05, 0.04, 0.03), 0.04, 0.8, "#2B4C9B", 0.35),
            ("KR-CAP-300", "electrolytic capacitor", "cylinder", (0.04, 0.04, 0.05), 0.03, 0.7,
             "#D9A521", 0.20),
        ],
    },
    "jp-nagoya": {
        "name": "Nagoya precision machining cell (JP)",
        "seed": 2202,
        "start": "2025-03-04T08:30:00+09:00",
        "robot": "kuka_iiwa",
        "payload_kg": 14.0,
        "gripper": {"kind": "suction", "max_force_n": 120.0, "capture_distance_m": 0.010},
        "controller": {"max_ee_speed_mps": 0.4},
        "conveyor_speed_mps": 0.06,
        "control_rate_hz": 20,
        "sensors": {},
        "policy_link": {},
        "safety": {
            "max_tcp_speed_mps": 0.5,
            "max_contact_force_n": 150.0,
            "keep_out_zones": [
                {"name": "operator_walkway", "min_xyz": [-0.6, -1.2, 0.0],
                 "max_xyz": [0.6, -0.8, 2.0]},
            ],
        },
        "takt_time_s": 12.0,
        "task": {"parts_per_episode": 3, "time_limit_s": 50.0},
        # The KUKA keeps its tool vertical only in front of the base (7 degrees off at
        # (0.16, -0.42)): fixtures beside the bins.
        "peg_fixtures_xy": ((0.41, -0.37), (0.3, -0.34)),
        # Tight machined fit, sharp edge, a heavier round steel pin (the KUKA's tool yaws by
        # ~10 degrees between the fixtures: a square peg would not fit); a ground nest, 1 mm of
        # play.
        "peg_in_hole": {"peg_shape": "cylinder", "peg_size_m": [0.04, 0.04, 0.08],
                        "peg_mass_kg": 0.4,
                        "clearance_m": 0.0003, "hole_depth_m": 0.04, "chamfer_m": 0.0,
                        "peg_pose_noise_m": 0.001, "time_limit_s": 25.0},
        # Palletize: heavy machined-part cartons in two columns of two, on a pallet turned
        # 115 degrees (the others 157); slow belt.
        "pallet": {"xyz": (-0.4, 0.155, 0.05), "rz": 2.0, "size": (0.2, 0.24, 0.1)},
        "palletize": {"carton": {"size_m": [0.16, 0.1, 0.08], "mass_kg": 2.0,
                                 "color": "#9C7A4D"},
                      "layers": [[[0.0, -0.0525, 0.0], [0.0, 0.0525, 0.0]],
                                 [[0.0, -0.0525, 0.0], [0.0, 0.0525, 0.0]]],
                      "time_limit_s": 70.0},
        "inter_arrival_s": (9.0, 14.0),
        "n_arrivals": 200,
        "bin_y": (0.10, -0.16),
        "parts": [
            ("JP-GRB-080", "gear blank", "cylinder", (0.08, 0.08, 0.03), 1.2, 0.6, "#8C8F94",
             0.55),
            ("JP-BRK-120", "mounting bracket", "box", (0.12, 0.05, 0.025), 0.9, 0.6, "#4F5B66",
             0.45),
        ],
    },
    "us-austin": {
        "name": "Austin research cell (US)",
        "seed": 3303,
        "start": "2025-03-05T09:00:00-06:00",
        "robot": "xarm6",
        "payload_kg": 5.0,
        "gripper": {"kind": "suction", "max_force_n": 60.0, "capture_distance_m": 0.012},
        "controller": {"max_ee_speed_mps": 0.6},
        "conveyor_speed_mps": 0.10,
        "control_rate_hz": 24,
        "sensors": {"position_noise_m": 0.003, "velocity_noise_mps": 0.01, "latency_steps": 1,
                    "dropout_prob": 0.02},
        "policy_link": {"latency_steps": 2},
        "safety": {"max_tcp_speed_mps": 1.0, "max_contact_force_n": 100.0, "keep_out_zones": []},
        "takt_time_s": 8.0,
        "task": {"parts_per_episode": 3, "time_limit_s": 40.0},
        # Medium fit with a small lead-in; the hole fixture is re-clamped each episode.
        "peg_in_hole": {"peg_size_m": [0.03, 0.03, 0.07], "peg_mass_kg": 0.1,
                        "clearance_m": 0.001, "hole_depth_m": 0.03, "chamfer_m": 0.002,
                        "hole_pose_noise_m": 0.005, "time_limit_s": 20.0},
        # Palletize: three crossed layers of two (each turned 90 degrees on the last), 15 mm
        # apart: the sensor noise needs the room.
        "pallet": {"xyz": (-0.42, 0.155, 0.05), "rz": 2.74, "size": (0.2, 0.2, 0.1)},
        "palletize": {"carton": {"size_m": [0.12, 0.08, 0.06], "mass_kg": 0.6,
                                 "color": "#B08850"},
                      "layers": [[[0.0, -0.0475, 0.0], [0.0, 0.0475, 0.0]],
                                 [[-0.0475, 0.0, 1.570796], [0.0475, 0.0, 1.570796]],
                                 [[0.0, -0.0475, 0.0], [0.0, 0.0475, 0.0]]],
                      "time_limit_s": 60.0},
        "inter_arrival_s": (6.0, 10.0),
        "n_arrivals": 200,
        "bin_y": (0.12, -0.10, -0.32),
        "parts": [
            ("US-HSG-010", "sensor housing", "box", (0.08, 0.06, 0.04), 0.15, 0.8, "#C0392B",
             0.40),
            ("US-BRG-020", "bearing sleeve", "cylinder", (0.05, 0.05, 0.04), 0.30, 0.7,
             "#7F8C8D", 0.35),
            ("US-BAT-030", "battery pack", "box", (0.09, 0.05, 0.035), 0.45, 0.8, "#27AE60",
             0.25),
        ],
    },
}
# fmt: on

STATION_COLUMNS = (
    "station_id kind parent_id x y z rx ry rz size_x size_y size_z conveyor_speed_mps "
    "payload_kg accepts"
).split()
PART_COLUMNS = "part_id name shape size_x size_y size_z mass_kg friction color mesh_uri".split()
ARRIVAL_COLUMNS = "timestamp case_id part_id station_id activity".split()


def site_yaml(site_id: str, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "name": p["name"],
        "provenance": {
            "source": "synthetic",
            "generator": GENERATOR,
            "seed": p["seed"],
            "notes": "Synthetic data for the testbed, not measured at a real plant. Layout, "
            "parts and the production log are generated from the parameters in "
            f"{GENERATOR}; edit them there and re-run instead of editing these files.",
        },
        "gravity_mps2": [0.0, 0.0, -9.81],
        "physics": {"time_step_s": 1.0 / 240.0, "solver_iterations": 50},
        "control_rate_hz": p["control_rate_hz"],
        "robot": {
            "model": p["robot"],
            "station_id": "robot1",
            "gripper": p["gripper"],
            "controller": p["controller"],
        },
        "sensors": p["sensors"],
        "policy_link": p["policy_link"],
        "safety": {**p["safety"], "jurisdiction": JURISDICTIONS[site_id]},
        "takt_time_s": p["takt_time_s"],
        "tasks": [
            {"kind": "conveyor-sort", **p["task"]},
            {"kind": "peg-in-hole", **p["peg_in_hole"]},
            {"kind": "palletize", **p["palletize"]},
        ],
        **({"coworkers": [COWORKER["person"]]} if site_id in COWORKER["sites"] else {}),
    }


def _station(station_id: str, kind: str, xyz: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    row = {"station_id": station_id, "kind": kind, "x": xyz[0], "y": xyz[1], "z": xyz[2]}
    row.update(extra)
    return row


def station_rows(site_id: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    sx, sy, sz = CONVEYOR["size"]
    rows = [
        _station("robot1", "robot", (0.0, 0.0, 0.0), payload_kg=p["payload_kg"]),
        _station(
            CONVEYOR["id"],
            "conveyor",
            CONVEYOR["xyz"],
            rz=0.0,
            size_x=sx,
            size_y=sy,
            size_z=sz,
            conveyor_speed_mps=p["conveyor_speed_mps"],
        ),
    ]
    bx, by, bz = BIN_SIZE
    for index, (part, y) in enumerate(zip(p["parts"], p["bin_y"], strict=True), start=1):
        rows.append(
            _station(
                f"bin{index}",
                "bin",
                (BIN_X, y, BIN_Z),
                size_x=bx,
                size_y=by,
                size_z=bz,
                accepts=part[0],
            )
        )
    default_xy = (HOLE_FIXTURE["xyz"][:2], PEG_NEST["xyz"][:2])
    placed = p.get("peg_fixtures_xy", default_xy)
    for fixture, xy in zip((HOLE_FIXTURE, PEG_NEST), placed, strict=True):
        fx, fy, fz = fixture["size"]
        xyz = (*xy, fixture["xyz"][2])
        rows.append(_station(fixture["id"], "fixture", xyz, size_x=fx, size_y=fy, size_z=fz))
    # Palletize: the pallet stands behind the robot on the belt's side (150-165 degrees round
    # from +x: inside the Panda's and the KUKA's base-joint range), between belt and fixtures.
    px, py, pz = p["pallet"]["size"]
    rows.append(
        _station(
            "pallet1",
            "pallet",
            p["pallet"]["xyz"],
            rz=p["pallet"]["rz"],
            size_x=px,
            size_y=py,
            size_z=pz,
        )
    )
    if site_id in COWORKER["sites"]:
        walk = COWORKER["walkway"]
        wx, wy, wz = walk["size"]
        rows.append(_station(walk["id"], "walkway", walk["xyz"], rz=walk["rz"], size_x=wx,
                             size_y=wy, size_z=wz))  # fmt: skip
    rows.append(_camera("cam1", CAMERA_XYZ, CAMERA_TARGET))
    rows.append(_camera("cam2", PICK_CAMERA_XYZ, PICK_CAMERA_TARGET))
    return rows


def _camera(station_id: str, xyz: tuple[float, ...], target: tuple[float, ...]) -> dict[str, Any]:
    """A camera row looking from `xyz` at `target`.

    A camera looks along its local +x: yaw it towards the target, pitch it down at it.
    """
    dx, dy, dz = (t - c for t, c in zip(target, xyz, strict=True))
    yaw = math.atan2(dy, dx)
    pitch = math.atan2(-dz, math.hypot(dx, dy))
    return _station(station_id, "camera", xyz, ry=round(pitch, 6), rz=round(yaw, 6))


def part_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for part_id, name, shape, size, mass, friction, color, _share in p["parts"]:
        rows.append(
            {
                "part_id": part_id,
                "name": name,
                "shape": shape,
                "size_x": size[0],
                "size_y": size[1],
                "size_z": size[2],
                "mass_kg": mass,
                "friction": friction,
                "color": color,
            }
        )
    return rows


def arrival_rows(site_id: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    """An event log: each case arrives on the belt, is picked by the robot, then sorted."""
    rng = random.Random(p["seed"])
    part_ids = [part[0] for part in p["parts"]]
    shares = [part[7] for part in p["parts"]]
    bins = {part_id: f"bin{i}" for i, part_id in enumerate(part_ids, start=1)}
    travel_s = 0.75 / p["conveyor_speed_mps"]  # entry end of the belt to the robot
    prefix = site_id.split("-")[0].upper()
    clock = datetime.fromisoformat(p["start"])
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for n in range(1, p["n_arrivals"] + 1):
        if n > 1:
            clock += timedelta(seconds=round(rng.uniform(*p["inter_arrival_s"]), 1))
        part_id = rng.choices(part_ids, weights=shares)[0]
        case_id = f"{prefix}-{n:06d}"
        picked = clock + timedelta(seconds=round(travel_s + rng.uniform(-0.5, 0.5), 2))
        sorted_at = picked + timedelta(seconds=round(rng.uniform(1.5, 3.0), 2))
        for order, (when, station, activity) in enumerate(
            [
                (clock, CONVEYOR["id"], "arrive"),
                (picked, "robot1", "pick"),
                (sorted_at, bins[part_id], "sort"),
            ]
        ):
            row = {
                "timestamp": when.isoformat(timespec="milliseconds"),
                "case_id": case_id,
                "part_id": part_id,
                "station_id": station,
                "activity": activity,
            }
            events.append((when, n * 3 + order, row))
    events.sort(key=lambda event: (event[0], event[1]))
    return [row for _, _, row in events]


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _cell(row.get(column)) for column in columns})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, but vectors like ``[0.0, 0.0, -9.81]`` on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(item, (int, float, str)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def write_site(out: Path, site_id: str, p: dict[str, Any]) -> Path:
    folder = out / site_id
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"# {site_id}: SYNTHETIC factory data written by {GENERATOR} (seed {p['seed']}).\n"
        "# Do not edit by hand; change SITES in the generator and re-run it.\n"
    )
    body = yaml.dump(
        site_yaml(site_id, p), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88
    )
    (folder / "site.yaml").write_text(header + body, encoding="utf-8")
    write_csv(folder / "stations.csv", STATION_COLUMNS, station_rows(site_id, p))
    write_csv(folder / "parts.csv", PART_COLUMNS, part_rows(p))
    write_csv(folder / "arrivals.csv", ARRIVAL_COLUMNS, arrival_rows(site_id, p))
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder to write <site_id>/ bundles into (default {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    for site_id, params in SITES.items():
        print(f"wrote {write_site(args.out, site_id, params)}")
    print(f"wrote {write_aml(args.out, AML_SITE)}")


def write_aml(out: Path, site_id: str) -> Path:
    """Write the bundle ``out/<site_id>`` as ``out/<site_id>.aml`` (CAEX 3.0, no side files)."""
    from envs.factory.automationml import export_aml  # the package, once the bundle exists

    target = out / f"{site_id}.aml"
    export_aml(out / site_id, target, written_at=AML_WRITTEN_AT, side_files=False)
    return target


if __name__ == "__main__":
    main()
