"""Layout feasibility: the shipped sites pass, and layouts the task cannot work in are rejected.

Each infeasible layout is a copy of kr-changwon (panda at the origin, belt along x at y 0.42 with
its top at 0.1 m, three bins at x 0.42) with one edit; the finding must name the file, the row,
the station, the value and what would fix it. ``gym.make`` raises the same findings.
"""

from __future__ import annotations

import csv
import inspect
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the env ids)
from envs.cells.cell import Cell
from envs.errors import DataIssue, FactoryDataError
from envs.factory import layout as rules
from envs.factory.loader import BundleCheck, check_bundle, load_bundle
from envs.factory.schema import ControllerSpec
from envs.robots import models
from envs.robots.arm import CartesianArm
from envs.sim import Sim
from envs.sites import SITE_DATA, list_sites, load_site
from envs.tasks import conveyor_sort as task_module
from envs.tasks.conveyor_sort import ConveyorSortTask

SITES = list_sites()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A writable copy of kr-changwon."""
    return Path(shutil.copytree(SITE_DATA / "kr-changwon", tmp_path / "cell"))


def rows_of(folder: Path) -> list[dict[str, str]]:
    with (folder / "stations.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_stations(folder: Path, rows: list[dict[str, str]]) -> None:
    with (folder / "stations.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def edit(folder: Path, station_id: str, **changes: str) -> None:
    rows = rows_of(folder)
    next(row for row in rows if row["station_id"] == station_id).update(changes)
    write_stations(folder, rows)


def add_yaml(folder: Path, text: str) -> None:
    site = folder / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8") + text, encoding="utf-8")


def set_yaml(folder: Path, old: str, new: str) -> None:
    site = folder / "site.yaml"
    text = site.read_text(encoding="utf-8")
    assert old in text
    site.write_text(text.replace(old, new), encoding="utf-8")


SPARE_SPOTS = ((0.13, -0.48), (-0.3, -0.3))
"""Where `add_bins` puts bins: in the panda's reach, clear of the others and of its base."""


def add_bins(folder: Path, count: int) -> None:
    """Add bins bin4.. (and a part for each) at spots the panda reaches."""
    rows = rows_of(folder)
    parts = (folder / "parts.csv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    for k in range(count):
        sid, pid = f"bin{4 + k}", f"KR-NEW-{k}"
        x, y = SPARE_SPOTS[k]
        rows.append(
            dict.fromkeys(rows[0], "")
            | {"station_id": sid, "kind": "bin", "x": f"{x:g}", "y": f"{y:g}", "z": "0.06"}
            | {"size_x": "0.2", "size_y": "0.2", "size_z": "0.12", "accepts": pid}
        )
        parts.append(f"{pid},new part,box,0.05,0.04,0.03,0.04,0.8,#2B4C9B,")
    write_stations(folder, rows)
    (folder / "parts.csv").write_text("\n".join(parts) + "\n", encoding="utf-8")


def only(check: BundleCheck, file: str, *fragments: str) -> DataIssue:
    """The one error of ``file`` whose text holds every fragment."""
    found = [e for e in check.errors if e.file == file and all(f in str(e) for f in fragments)]
    text = "\n".join(map(str, check.errors))
    assert len(found) == 1, f"{len(found)} errors with {fragments} in {file}:\n{text}"
    return found[0]


# ---------------------------------------------------------------------- the shipped sites


@pytest.mark.parametrize("site", SITES)
def test_every_shipped_site_passes_with_no_errors(site: str) -> None:
    check = check_bundle(SITE_DATA / site)
    assert check.errors == () and check.spec is not None, "\n".join(map(str, check.errors))
    for warning in check.warnings:  # warnings name a file and say what would be better
        assert warning.file in ("site.yaml", "stations.csv") and warning.expected


def test_a_tool_faster_than_the_tcp_limit_warns_and_does_not_fail(bundle: Path) -> None:
    set_yaml(bundle, "max_ee_speed_mps: 0.8", "max_ee_speed_mps: 1.6")  # limit 1.5 m/s
    check = check_bundle(bundle)
    assert check.spec is not None and check.errors == ()
    [warning] = check.warnings
    assert warning.location == "robot.controller.max_ee_speed_mps"
    assert "1.6 m/s" in str(warning) and "safety.max_tcp_speed_mps = 1.5 m/s" in str(warning)


# ---------------------------------------------------------------------- infeasible layouts


def far_side_bins(folder: Path) -> None:
    """A bin where docs/factory_bundle.md's example had it: across the robot from the belt.

    (Bins well off that line are fine: a carry from an end of the pick window clears the base.)
    """
    edit(folder, "bin1", x="0", y="-0.35")


def raised_belt(folder: Path) -> None:
    """A belt at 0.35 m: the bins' openings (0.12 m) are far below its top."""
    edit(folder, "conv1", z="0.3")


# bin5 is the second bin add_bins appends after the shipped rows (rows count from 1).
_BIN5_ROW = len(rows_of(SITE_DATA / "kr-changwon")) + 2

INFEASIBLE: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...]]] = {
    # name: (edit, file, fragments of the one finding the edit must cause)
    "bin across the robot from the belt": (
        far_side_bins,
        "stations.csv",
        ("row 3 (line 4), station bin1", "passes 0.", "base axis", "belt's side of the robot"),
    ),
    "bin openings below the belt top": (
        raised_belt,
        "stations.csv",
        ("row 3 (line 4), column z (bin1)", "0.230 m below the belt top", "to z >= 0.240"),
    ),
    "bin 5 m away": (
        lambda f: edit(f, "bin2", x="5"),
        "stations.csv",
        ("row 4 (line 5), station bin2", "5.00 m from the base axis", "move the bin to about"),
    ),
    "belt 3 m away": (
        lambda f: edit(f, "conv1", y="3"),
        "stations.csv",
        ("row 2 (line 3), station conv1", "centre line 3.00 m", "a belt within reach"),
    ),
    "belt below the floor": (
        lambda f: edit(f, "conv1", z="-0.2"),
        "stations.csv",
        ("row 2 (line 3), column z (conv1)", "bottom at z -0.250", "z >= 0.050"),
    ),
    "bin below the floor": (
        lambda f: edit(f, "bin3", z="-0.1"),
        "stations.csv",
        ("row 5 (line 6), column z (bin3)", "on or above the floor", "z >= 0.060"),
    ),
    "bin overlapping the belt": (
        lambda f: edit(f, "bin1", y="0.35"),
        "stations.csv",
        ("row 3 (line 4), station bin1", "into conveyor conv1", "at least 0.100 m apart"),
    ),
    "belt through the robot's base": (
        lambda f: edit(f, "conv1", y="0.1"),
        "stations.csv",
        ("row 2 (line 3), station conv1", "into robot robot1's base", "stations apart"),
    ),
    "five bins": (
        lambda f: add_bins(f, 2),
        "stations.csv",
        (
            f"row {_BIN5_ROW} (line {_BIN5_ROW + 1}), column kind (bin5)",
            "at most 4 bins",
            "accepts: A|B",
        ),
    ),
    "drop point in a keep-out zone": (
        lambda f: set_yaml(
            f,
            "keep_out_zones: []",
            "keep_out_zones: [{name: cage, min_xyz: [0.3, 0.0, 0.0], max_xyz: [0.6, 0.25, 1.0]}]",
        ),
        "stations.csv",
        ("row 3 (line 4), station bin1", "inside keep-out zone 'cage'", "out of the keep-out"),
    ),
    "keep-out wall between belt and bins": (
        lambda f: set_yaml(
            f,
            "keep_out_zones: []",
            "keep_out_zones: [{name: wall, min_xyz: [-1, 0.27, 0], max_xyz: [1, 0.28, 2]}]",
        ),
        "stations.csv",
        ("row 4 (line 5), station bin2", "crosses keep-out zone 'wall'", "straight carry from"),
    ),
    "tilted belt": (
        lambda f: edit(f, "conv1", ry="0.2"),
        "stations.csv",
        ("row 2 (line 3), column ry (conv1)", "ry = 0 on a conveyor", "(got 0.2)"),
    ),
    "too little time for the parts": (
        lambda f: set_yaml(f, "time_limit_s: 35.0", "time_limit_s: 9.0"),
        "site.yaml",
        (
            "tasks[conveyor-sort].time_limit_s",
            "every part can be sorted",
            "(got 9: the last of 3 parts",
        ),
    ),
    "gravity pointing up": (
        lambda f: set_yaml(f, "gravity_mps2: [0.0, 0.0, -9.81]", "gravity_mps2: [0.0, 0.0, 9.81]"),
        "site.yaml",
        ("gravity_mps2", "gravity pointing down", "(got [0, 0, 9.81])"),
    ),
}


@pytest.mark.parametrize("name", list(INFEASIBLE))
def test_an_infeasible_layout_is_rejected_with_row_station_value_and_remedy(
    bundle: Path, name: str
) -> None:
    change, file, fragments = INFEASIBLE[name]
    change(bundle)
    check = check_bundle(bundle)
    assert check.spec is None
    issue = only(check, file, *fragments)
    assert issue.value and issue.expected  # "expected <remedy> (got <value>)"
    assert str(issue).startswith(f"{file}: ")


@pytest.mark.parametrize("name", ["five bins", "bin 5 m away", "bin openings below the belt top"])
def test_gym_make_raises_the_findings_check_prints(bundle: Path, name: str) -> None:
    INFEASIBLE[name][0](bundle)
    check = check_bundle(bundle)
    with pytest.raises(FactoryDataError) as raised:
        gym.make("Testbed/ConveyorSort-v0", site=str(bundle))
    assert raised.value.issues == check.errors
    assert str(check.errors[0]) in str(raised.value)


def test_four_bins_in_reach_are_fine(bundle: Path) -> None:
    add_bins(bundle, 1)
    assert len(load_bundle(bundle).bins) == 4


def test_findings_of_every_station_come_at_once(bundle: Path) -> None:
    far_side_bins(bundle)
    edit(bundle, "bin2", x="5")
    edit(bundle, "conv1", ry="0.1")
    check = check_bundle(bundle)
    assert {e.location.split(", ")[-1] for e in check.errors} >= {
        "station bin1",
        "station bin2",
        "column ry (conv1)",
    }


# ---------------------------------------------------------------------- warnings


def test_marginal_layouts_warn_but_load(bundle: Path) -> None:
    rows = rows_of(bundle)
    rows.append(
        dict.fromkeys(rows[0], "")
        | {"station_id": "press", "kind": "fixture", "x": "-2", "y": "-2", "z": "0.5"}
        | {"size_x": "0.4", "size_y": "0.4", "size_z": "1.0"}
    )
    write_stations(bundle, rows)
    edit(bundle, "conv1", conveyor_speed_mps="0.9")
    check = check_bundle(bundle)
    assert check.spec is not None, "\n".join(map(str, check.errors))
    text = "\n".join(map(str, check.warnings))
    assert "station press: expected a fixture in reach of robot robot1" in text
    assert "column conveyor_speed_mps (conv1): expected a belt slower than the tool" in text
    assert "at least 1.5 s for a part in the pick window" in text


def test_arrivals_at_another_conveyor_warn(bundle: Path) -> None:
    rows = rows_of(bundle)
    rows.append(
        dict.fromkeys(rows[0], "")
        | {"station_id": "conv2", "kind": "conveyor", "x": "-1.5", "y": "1.5", "z": "0.05"}
        | {"size_x": "1", "size_y": "0.2", "size_z": "0.1", "conveyor_speed_mps": "0.1"}
    )
    write_stations(bundle, rows)
    log = bundle / "arrivals.csv"
    log.write_text(log.read_text(encoding="utf-8").replace(",conv1,arrive", ",conv2,arrive", 5))
    check = check_bundle(bundle)
    assert check.spec is not None
    [warning] = [w for w in check.warnings if w.file == "arrivals.csv"]
    assert "first conveyor in stations.csv (conv1)" in str(warning) and "conv2" in warning.value


# ---------------------------------------------------------------------- the task's numbers


def test_the_checks_use_the_cells_and_tasks_numbers() -> None:
    """The numbers `envs.factory.layout` mirrors are those the cell and the task apply."""
    spec = load_site("kr-changwon")
    sim = Sim(spec.site.physics.time_step_s, spec.site.gravity_mps2)
    try:
        cell = Cell(sim, spec)
        geometry = cell.bins[0]
        assert cell.drop_point(0)[2] - geometry.top_z == pytest.approx(rules.DROP_HEIGHT_M)
        inside = np.array([*geometry.center[:2], geometry.top_z + rules.IN_BIN_ABOVE_RIM_M])
        assert cell.bin_containing(inside - [0, 0, 1e-6]) == 0
        assert cell.bin_containing(inside + [0, 0, 1e-6]) is None
        wall = geometry.center[2] - spec.bins[0].size_z / 2 + rules.BIN_WALL_M
        assert geometry.floor_z == pytest.approx(wall)
        lowest = min([b.floor_z for b in cell.bins] + [cell.belt_top_z])
        assert cell.min_tool_z() == pytest.approx(lowest + rules.MIN_TOOL_ABOVE_FLOOR_M)
        part = spec.parts[0]
        body = cell.create_part(part, 0)
        cell.place_on_belt(body, part)
        position = np.array(sim.base_pose(body)[0])
        entry = -cell.belt_half_length + part.size_x / 2 + rules.BELT_ENTRY_M
        assert cell.along_belt(position) == pytest.approx(entry)
        assert task_module.FIRST_ARRIVAL_S == rules.FIRST_ARRIVAL_S
        lost = _lost_below_belt(cell, part.part_id)
        assert lost == pytest.approx(rules.LOST_BELOW_BELT_M, abs=1.5e-3)
    finally:
        sim.close()


def _lost_below_belt(cell: Cell, part_id: str) -> float:
    """How far below the belt top, outside any bin, the task first counts a free part lost."""
    task = ConveyorSortTask(cell, [(part_id, 0.0)])
    extra = [0] if len(inspect.signature(task.update).parameters) > 1 else []  # the step
    away = np.array([-2.0, -2.0, 0.0])
    for depth_mm in range(0, 100):
        instance = task.parts[0]
        instance.status, instance.position = "free", away + [0, 0, cell.belt_top_z - depth_mm / 1e3]
        if task.update(None, *extra):
            return depth_mm / 1e3
    raise AssertionError("a part far below the belt was never lost")


def test_the_robot_footprints_hold_the_links_that_do_not_swing() -> None:
    for name, info in models.ROBOT_MODELS.items():
        sim = Sim(1 / 240, (0.0, 0.0, -9.81))
        try:
            arm = CartesianArm(sim, name, (0.0, 0.0, 0.0), 0.0, ControllerSpec(), -1.0)
            low, high = (np.array(corner) for corner in info.footprint)
            first = info.arm_joints[0]
            for link in range(-1, first + 1):
                lo, hi = (np.array(v) for v in sim.client.getAABB(arm.body, link))
                if link == first:  # it turns about the base axis: its sweep is a circle
                    r = max(math.hypot(x, y) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]))
                    lo, hi = np.array([-r, -r, lo[2]]), np.array([r, r, hi[2]])
                assert np.all(lo[:2] >= low[:2] - 2e-3) and np.all(hi <= high + 2e-3), name
        finally:
            sim.close()


# ---------------------------------------------------------------------- the docs' example


def test_the_docs_floor_bin_example_fails_as_shown_and_its_fix_passes(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "factory_bundle.md").read_text(encoding="utf-8")
    section = docs.split("### Worked example: bins on the floor", 1)[1].split("\n## ", 1)[0]
    minimal = docs.split("## A minimal worked example", 1)[1]
    site = re.search(r"```yaml\n(.*?)```", section, re.S)
    layouts = re.findall(r"```\n(station_id,.*?)```", section, re.S)
    outputs = re.findall(r"```\n((?:error: bundle|OK) .*?)```", section, re.S)
    assert site and len(layouts) == len(outputs) == 2
    (tmp_path / "site.yaml").write_text(site[1], encoding="utf-8")
    for name in ("parts.csv", "arrivals.csv"):
        block = re.search(rf"`{name}`:\n\n```\n(.*?)```", minimal, re.S)
        assert block, name
        (tmp_path / name).write_text(block[1], encoding="utf-8")
    for layout, output in zip(layouts, outputs, strict=True):
        (tmp_path / "stations.csv").write_text(layout, encoding="utf-8")
        check = check_bundle(tmp_path)
        shown = [line for line in output.splitlines() if line.startswith("  - ")]
        if output.startswith("error:"):
            assert output.startswith(f"error: bundle floor-cell: {len(check.errors)} issue(s)")
            for line, issue in zip(shown, check.errors, strict=True):  # "..." elides text
                fragments = [f.strip() for f in line[4:].split("...") if f.strip()]
                assert all(fragment in str(issue) for fragment in fragments), str(issue)
        else:
            assert check.spec is not None, "\n".join(map(str, check.errors))
            assert check.spec.site.physics.time_step_s == 1 / 240
            window = re.search(r"from (\S+) to (\S+) m along", output)
            assert window and check.window == pytest.approx(
                (float(window[1]), float(window[2])), abs=1e-9
            )
