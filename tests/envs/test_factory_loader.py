"""Loading factory bundles: every bad input is reported with its file, row or key, and remedy."""

from __future__ import annotations

import csv
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envs.errors import DataIssue, FactoryDataError
from envs.factory.arrivals import derive_arrival_process
from envs.factory.loader import load_bundle
from envs.factory.schema import Arrival
from envs.sites import SITE_DATA


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A writable copy of a packaged site to corrupt."""
    return Path(shutil.copytree(SITE_DATA / "kr-changwon", tmp_path / "bundle"))


def replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> None:
    header = header or list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def edit_row(path: Path, key: str, **changes: str) -> None:
    rows = read_rows(path)
    first = next(iter(rows[0]))
    matches = [row for row in rows if row[first] == key]
    assert matches, f"no row {key!r} in {path.name}"
    matches[0].update(changes)
    write_rows(path, rows)


def issues_of(path: Path) -> tuple[DataIssue, ...]:
    with pytest.raises(FactoryDataError) as caught:
        load_bundle(path)
    assert caught.value.issues, "a FactoryDataError must carry issues"
    return caught.value.issues


def find(issues: tuple[DataIssue, ...], file: str, *fragments: str) -> DataIssue:
    """The one issue of ``file`` whose text contains every fragment."""
    found = [i for i in issues if i.file == file and all(f in str(i) for f in fragments)]
    assert found, f"no issue in {file} with {fragments}; got:\n" + "\n".join(map(str, issues))
    return found[0]


# ------------------------------------------------------------------------------ valid data


def test_valid_bundle_loads_with_hash_and_process(bundle: Path) -> None:
    spec = load_bundle(bundle)
    assert spec.site_id == "kr-changwon"
    assert spec.root == bundle.resolve()
    assert len(spec.bundle_hash) == 64
    assert spec.site.substeps == 8
    assert spec.conveyor.station_id == "conv1"
    assert [spec.bin_index_for(p.part_id) for p in spec.parts] == [0, 1, 2]
    assert abs(sum(spec.arrival_process.part_shares.values()) - 1.0) < 1e-9
    assert 5.0 <= spec.arrival_process.mean_inter_arrival_s <= 9.0


def test_bundle_hash_is_stable_and_tracks_every_byte(bundle: Path) -> None:
    first = load_bundle(bundle).bundle_hash
    assert load_bundle(bundle).bundle_hash == first
    replace(bundle / "parts.csv", "control board PCB", "control board pcb")
    assert load_bundle(bundle).bundle_hash != first


def test_hidden_files_do_not_change_the_hash(bundle: Path) -> None:
    first = load_bundle(bundle).bundle_hash
    (bundle / ".DS_Store").write_bytes(b"\x00junk")
    assert load_bundle(bundle).bundle_hash == first


def test_row_order_of_the_log_does_not_matter(bundle: Path) -> None:
    before = load_bundle(bundle).arrival_process
    rows = read_rows(bundle / "arrivals.csv")
    write_rows(bundle / "arrivals.csv", rows[::-1])
    assert load_bundle(bundle).arrival_process == before


def test_empty_cells_take_defaults_and_blank_lines_are_skipped(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-PCB-100", friction="", color="")
    replace(bundle / "stations.csv", "\nconv1,", "\n\nconv1,")
    spec = load_bundle(bundle)
    assert spec.part("KR-PCB-100").friction == 0.8
    assert spec.part("KR-PCB-100").color == (0.5, 0.5, 0.5, 1.0)
    assert spec.station("conv1").parent_id is None


def test_utf8_bom_is_tolerated(bundle: Path) -> None:
    data = (bundle / "parts.csv").read_bytes()
    (bundle / "parts.csv").write_bytes(b"\xef\xbb\xbf" + data)
    assert load_bundle(bundle).part("KR-RLY-200").mass_kg == 0.04


def test_parent_frames_resolve_translation_and_yaw(bundle: Path) -> None:
    # Without the pallet: the conveyor turned below would stand in it.
    rows = [row for row in read_rows(bundle / "stations.csv") if row["kind"] != "pallet"]
    rows.append(
        dict.fromkeys(rows[0], "")
        | {
            "station_id": "stop1",
            "kind": "fixture",
            "parent_id": "conv1",
            "x": "0.8",
            "y": "0",
            "z": "0.07",
            "size_x": "0.02",
            "size_y": "0.3",
            "size_z": "0.04",
        }
    )
    # conv1 turned to run along world +y, on the robot's other side from the bins
    rows[1].update(rz="1.5707963267948966", x="-0.42", y="0")
    write_rows(bundle / "stations.csv", rows)
    position, rpy = load_bundle(bundle).world_pose("stop1")
    assert position == pytest.approx((-0.42, 0.8, 0.12))
    assert rpy[2] == pytest.approx(1.5707963267948966)


def test_mesh_part_under_assets_loads(bundle: Path) -> None:
    (bundle / "assets").mkdir()
    (bundle / "assets" / "clip.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    edit_row(bundle / "parts.csv", "KR-RLY-200", shape="mesh", mesh_uri="assets/clip.obj")
    spec = load_bundle(bundle)
    assert spec.part("KR-RLY-200").mesh_uri == "assets/clip.obj"


# ------------------------------------------------------------------------ folder and files


def test_missing_folder(tmp_path: Path) -> None:
    issues = issues_of(tmp_path / "nope")
    assert "no such folder" in str(issues[0]) and "site.yaml" in issues[0].expected


def test_a_file_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("a: 1")
    assert "a file" in str(issues_of(tmp_path / "x.yaml")[0])


@pytest.mark.parametrize("name", ["site.yaml", "stations.csv", "parts.csv", "arrivals.csv"])
def test_missing_file(bundle: Path, name: str) -> None:
    (bundle / name).unlink()
    issue = find(issues_of(bundle), name, "missing")
    assert "bundle folder" in issue.expected


def test_misnamed_file_is_pointed_out(bundle: Path) -> None:
    (bundle / "site.yaml").rename(bundle / "Site.yml")
    find(issues_of(bundle), "site.yaml", "missing (found 'Site.yml')")


@pytest.mark.parametrize("name", ["site.yaml", "stations.csv", "parts.csv", "arrivals.csv"])
def test_empty_file(bundle: Path, name: str) -> None:
    (bundle / name).write_text("  \n")
    find(issues_of(bundle), name, "an empty file")


def test_non_utf8_bytes_name_line_and_byte(bundle: Path) -> None:
    data = (bundle / "parts.csv").read_bytes().replace(b"relay module", b"relay m\xf6dule")
    (bundle / "parts.csv").write_bytes(data)
    issue = find(issues_of(bundle), "parts.csv", "UTF-8")
    assert issue.location == "line 3, byte 19" and issue.value == "b'\\xf6'"


# -------------------------------------------------------------------------------- site.yaml


def test_yaml_syntax_error_names_line(bundle: Path) -> None:
    replace(bundle / "site.yaml", "takt_time_s: 6.0", "takt_time_s: [6.0")
    issue = find(issues_of(bundle), "site.yaml", "valid YAML")
    assert issue.location.startswith("line ")


def test_yaml_must_be_a_mapping(bundle: Path) -> None:
    (bundle / "site.yaml").write_text("- just\n- a list\n")
    find(issues_of(bundle), "site.yaml", "top level", "a mapping")


def test_yaml_bad_enum_names_key_path_and_line(bundle: Path) -> None:
    replace(bundle / "site.yaml", "kind: suction", "kind: vacuum")
    issue = find(issues_of(bundle), "site.yaml", "robot.gripper.kind")
    assert issue.value == "'vacuum'" and issue.expected == "'suction' or 'fingers'"
    assert "(line " in issue.location


def test_yaml_unknown_key_suggests_the_right_one(bundle: Path) -> None:
    replace(bundle / "site.yaml", "max_force_n: 60.0", "max_force: 60.0")
    issue = find(issues_of(bundle), "site.yaml", "robot.gripper.max_force")
    assert "did you mean 'max_force_n'" in issue.expected


def test_yaml_duplicate_key(bundle: Path) -> None:
    replace(bundle / "site.yaml", "takt_time_s: 6.0", "takt_time_s: 6.0\ntakt_time_s: 7.0")
    find(issues_of(bundle), "site.yaml", "takt_time_s", "used once")


def test_yaml_missing_required_key(bundle: Path) -> None:
    replace(bundle / "site.yaml", "  model: panda\n", "")
    issue = find(issues_of(bundle), "site.yaml", "robot.model")
    assert issue.expected == "a value (required)"


def test_yaml_control_rate_must_divide_physics_rate(bundle: Path) -> None:
    replace(bundle / "site.yaml", "control_rate_hz: 30", "control_rate_hz: 7")
    issue = find(issues_of(bundle), "site.yaml", "control_rate_hz", "divides the physics rate")
    assert issue.value == "7"


def test_yaml_keep_out_zone_must_be_ordered(bundle: Path) -> None:
    replace(
        bundle / "site.yaml",
        "keep_out_zones: []",
        "keep_out_zones:\n  - {name: z1, min_xyz: [1, 0, 0], max_xyz: [0, 1, 1]}",
    )
    find(issues_of(bundle), "site.yaml", "safety.keep_out_zones[0]", "min_xyz below max_xyz")


def test_yaml_out_of_range_number(bundle: Path) -> None:
    replace(bundle / "site.yaml", "max_ee_speed_mps: 0.8", "max_ee_speed_mps: -1")
    issue = find(issues_of(bundle), "site.yaml", "robot.controller.max_ee_speed_mps")
    assert issue.expected == "greater than 0"


# -------------------------------------------------------------------------------- CSV rows


def test_unit_suffixed_column_asks_for_si_units(bundle: Path) -> None:
    replace(bundle / "parts.csv", "mass_kg", "mass_g")
    issues = issues_of(bundle)
    issue = find(issues, "parts.csv", "unknown column 7")
    assert issue.value == "'mass_g'" and issue.expected.startswith("mass_kg (SI units")
    assert not [i for i in issues if "required column" in i.expected]  # reported once


def test_unit_suffixed_position_column(bundle: Path) -> None:
    replace(bundle / "stations.csv", ",x,", ",x_mm,")
    find(issues_of(bundle), "stations.csv", "'x_mm'", "x (SI units")


def test_misspelt_column_suggests_the_right_one(bundle: Path) -> None:
    replace(bundle / "stations.csv", "accepts", "acepts")
    issues = issues_of(bundle)
    find(issues, "stations.csv", "header (line 1)", "did you mean 'accepts'")


def test_missing_required_column(bundle: Path) -> None:
    rows = read_rows(bundle / "parts.csv")
    header = [c for c in rows[0] if c != "shape"]
    write_rows(bundle / "parts.csv", [{c: r[c] for c in header} for r in rows], header)
    issues = issues_of(bundle)
    find(issues, "parts.csv", "header (line 1)", "required column(s) shape")
    assert not [i for i in issues if "column shape" in i.location]


def test_duplicate_column(bundle: Path) -> None:
    replace(bundle / "parts.csv", "friction,", "mass_kg,")
    find(issues_of(bundle), "parts.csv", "column 8", "duplicate column")


def test_wrong_number_of_cells(bundle: Path) -> None:
    replace(bundle / "parts.csv", "#2B4C9B,", "#2B4C9B,,extra")
    issue = find(issues_of(bundle), "parts.csv", "row 2 (line 3)")
    assert issue.value == "11 cells" and issue.expected.startswith("10 cells")


def test_bad_enum_cell_names_row_line_and_column(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "bin2", kind="bucket")
    issue = find(issues_of(bundle), "stations.csv", "row 4 (line 5), column kind")
    assert issue.value == "'bucket'" and "'bin'" in issue.expected


def test_row_numbers_count_data_rows_not_blank_lines(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-RLY-200", mass_kg="heavy")
    replace(bundle / "parts.csv", "\nKR-RLY-200", "\n\nKR-RLY-200")
    issue = find(issues_of(bundle), "parts.csv", "column mass_kg")
    assert issue.location == "row 2 (line 4), column mass_kg"
    assert "valid number" in issue.expected


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "0"])
def test_non_finite_or_non_positive_sizes(bundle: Path, value: str) -> None:
    edit_row(bundle / "parts.csv", "KR-CAP-300", size_z=value)
    find(issues_of(bundle), "parts.csv", "row 3 (line 4), column size_z", repr(value))


def test_bad_color(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-CAP-300", color="yellow")
    find(issues_of(bundle), "parts.csv", "column color", "#RRGGBB")


def test_bad_identifier(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-CAP-300", part_id="KR CAP 300")
    find(issues_of(bundle), "parts.csv", "column part_id", "an id of 1-63 letters")


def test_row_rule_across_columns(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "conv1", conveyor_speed_mps="")
    issue = find(issues_of(bundle), "stations.csv", "row 2 (line 3)")
    assert issue.value == "'conv1'" and "conveyor_speed_mps on a conveyor" in issue.expected


def _cam_row(bundle: Path) -> int:
    """The row number of cam1 in stations.csv (rows count from 1, after the header)."""
    return 1 + [row["station_id"] for row in read_rows(bundle / "stations.csv")].index("cam1")


def test_accepts_only_on_bins(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "cam1", accepts="KR-PCB-100")
    find(issues_of(bundle), "stations.csv", f"row {_cam_row(bundle)}", "no accepts on a camera")


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("KR-RLY-200,relay module", '"KR-RLY-200"x,relay module', "',' expected after '\"'"),
        ("KR-CAP-300,", '"KR-CAP-300,', "unexpected end of data"),
    ],
)
def test_broken_csv_quoting(bundle: Path, old: str, new: str, error: str) -> None:
    replace(bundle / "parts.csv", old, new)
    issue = find(issues_of(bundle), "parts.csv", "valid CSV", error)
    assert issue.location.startswith("line ")


# ------------------------------------------------------------------------ cross-file rules


def test_duplicate_ids(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "bin3", station_id="bin2")
    edit_row(bundle / "parts.csv", "KR-CAP-300", part_id="KR-RLY-200")
    issues = issues_of(bundle)
    find(issues, "stations.csv", "row 5 (line 6), column station_id", "unique", "row 4")
    find(issues, "parts.csv", "row 3 (line 4), column part_id", "unique", "row 2")


def test_dangling_parent(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "cam1", parent_id="mast9")
    find(issues_of(bundle), "stations.csv", "column parent_id", "'mast9'", "known: bin1")


def test_parent_cycle(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "bin1", parent_id="bin2")
    edit_row(bundle / "stations.csv", "bin2", parent_id="bin1")
    issues = issues_of(bundle)
    find(issues, "stations.csv", "row 3", "cycle bin1 -> bin2 -> bin1")
    find(issues, "stations.csv", "row 4", "cycle bin2 -> bin1 -> bin2")


def test_self_parent_is_a_cycle(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "cam1", parent_id="cam1")
    find(issues_of(bundle), "stations.csv", f"row {_cam_row(bundle)}", "cycle cam1 -> cam1")


def test_no_robot_station(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "robot1", kind="table", size_x="1", size_y="1", size_z="1")
    issues = issues_of(bundle)
    find(issues, "stations.csv", "exactly one station of kind robot")
    find(issues, "site.yaml", "robot.station_id", "a station of kind robot", "is a table")


def test_two_robot_stations(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "cam1", kind="robot")
    row = _cam_row(bundle)
    find(
        issues_of(bundle),
        "stations.csv",
        f"row {row} (line {row + 1}), column kind",
        "exactly one robot",
    )


def test_site_robot_station_must_exist(bundle: Path) -> None:
    replace(bundle / "site.yaml", "station_id: robot1", "station_id: robot7")
    find(issues_of(bundle), "site.yaml", "robot.station_id", "'robot7'", "robot stations: robot1")


def test_no_conveyor_and_no_bin(bundle: Path) -> None:
    rows = [r for r in read_rows(bundle / "stations.csv") if r["kind"] not in ("conveyor", "bin")]
    write_rows(bundle / "stations.csv", rows)
    issues = issues_of(bundle)
    find(issues, "stations.csv", "no conveyor station")
    find(issues, "stations.csv", "no bin station")


def test_bin_accepts_unknown_part(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "bin3", accepts="KR-CAP-300|KR-XXX-999")
    issue = find(issues_of(bundle), "stations.csv", "row 5 (line 6), column accepts")
    assert issue.value == "'KR-XXX-999'" and "part_ids listed in parts.csv" in issue.expected


def test_part_in_no_bin_and_part_in_two_bins(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "bin3", accepts="KR-PCB-100")
    issues = issues_of(bundle)
    find(issues, "parts.csv", "row 1 (line 2)", "accepted by bin1, bin3", "exactly one bin")
    find(issues, "parts.csv", "row 3 (line 4)", "accepted by no bin")


def test_part_must_fit_its_bin(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-PCB-100", size_x="0.3")
    find(issues_of(bundle), "stations.csv", "row 3", "fit the bin's opening", "0.3 x 0.07")


def test_part_must_be_liftable(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-CAP-300", mass_kg="9")
    issue = find(issues_of(bundle), "parts.csv", "row 3 (line 4), column mass_kg")
    assert "88.3 N" in issue.expected and "max_force_n = 60 N" in issue.expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/etc/passwd.obj", "relative path"),
        ("C:\\meshes\\clip.obj", "relative path"),
        ("assets/../../secret.obj", "no '..'"),
        ("meshes/clip.obj", "under the bundle's assets/"),
        ("assets/clip.dae", ".obj or .stl"),
        ("assets/missing.obj", "not found"),
    ],
)
def test_bad_mesh_uri(bundle: Path, uri: str, expected: str) -> None:
    (bundle / "assets").mkdir()
    (bundle / "assets" / "clip.obj").write_text("v 0 0 0\n")
    edit_row(bundle / "parts.csv", "KR-RLY-200", shape="mesh", mesh_uri=uri)
    issue = find(issues_of(bundle), "parts.csv", "row 2 (line 3), column mesh_uri", expected)
    assert issue.value == repr(uri)


def test_mesh_part_needs_uri(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-RLY-200", shape="mesh")
    find(issues_of(bundle), "parts.csv", "row 2", "mesh_uri on a mesh part")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_mesh_link_out_of_the_bundle(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.obj").write_text("v 0 0 0\n")
    (bundle / "assets").mkdir()
    (bundle / "assets" / "clip.obj").symlink_to(tmp_path / "outside.obj")
    edit_row(bundle / "parts.csv", "KR-RLY-200", shape="mesh", mesh_uri="assets/clip.obj")
    find(issues_of(bundle), "parts.csv", "column mesh_uri", "link to outside")


# ----------------------------------------------------------------------------- arrivals.csv


def test_unknown_part_and_station_in_log_are_grouped(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    for row in rows[:7]:
        row["part_id"] = "KR-ZZZ-000"
    rows[9]["station_id"] = "conv2"
    write_rows(bundle / "arrivals.csv", rows)
    issues = issues_of(bundle)
    issue = find(issues, "arrivals.csv", "rows 1, 2, 3, 4, 5 and 2 more, column part_id")
    assert issue.value == "'KR-ZZZ-000'" and "KR-PCB-100" in issue.expected
    find(issues, "arrivals.csv", "row 10, column station_id", "'conv2'")


def test_arrive_must_be_at_a_conveyor(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    rows[0]["station_id"] = "bin1"
    write_rows(bundle / "arrivals.csv", rows)
    find(issues_of(bundle), "arrivals.csv", "row 1, column station_id", "bin1 is a bin")


def test_stopped_conveyor_cannot_take_arrivals(bundle: Path) -> None:
    edit_row(bundle / "stations.csv", "conv1", conveyor_speed_mps="0")
    find(issues_of(bundle), "stations.csv", "row 2", "conveyor_speed_mps > 0")


def test_needs_two_arrive_events(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    arrive = [r for r in rows if r["activity"] == "arrive"][:1]
    write_rows(bundle / "arrivals.csv", arrive + [r for r in rows if r["activity"] != "arrive"])
    find(issues_of(bundle), "arrivals.csv", "1 'arrive' events", "at least 2")


def test_arrive_events_need_a_positive_gap(bundle: Path) -> None:
    rows = [r for r in read_rows(bundle / "arrivals.csv") if r["activity"] == "arrive"][:3]
    for row in rows:
        row["timestamp"] = "2025-03-03T06:00:00+09:00"
    write_rows(bundle / "arrivals.csv", rows)
    find(issues_of(bundle), "arrivals.csv", "column timestamp", "share one timestamp")


def test_unix_seconds_are_not_a_timestamp(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    rows[2]["timestamp"] = "1741000000"
    write_rows(bundle / "arrivals.csv", rows)
    issue = find(issues_of(bundle), "arrivals.csv", "row 3 (line 4), column timestamp")
    assert issue.value == "'1741000000'" and "ISO 8601" in issue.expected


def test_naive_and_aware_timestamps_do_not_mix(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    rows[4]["timestamp"] = rows[4]["timestamp"][:-6]
    write_rows(bundle / "arrivals.csv", rows)
    find(issues_of(bundle), "arrivals.csv", "row 5, column timestamp", "offset")


def test_case_arrives_once_with_one_part(bundle: Path) -> None:
    rows = read_rows(bundle / "arrivals.csv")
    arrivals = [r for r in rows if r["activity"] == "arrive"]
    arrivals[1]["case_id"] = arrivals[0]["case_id"]
    picks = [r for r in rows if r["activity"] == "pick"]
    picks[5]["part_id"] = next(p for p in ("KR-PCB-100", "KR-CAP-300") if p != picks[5]["part_id"])
    write_rows(bundle / "arrivals.csv", rows)
    issues = issues_of(bundle)
    find(issues, "arrivals.csv", "column case_id", "one 'arrive' event per case_id")
    find(issues, "arrivals.csv", "column part_id", "one part_id per case")


# ---------------------------------------------------------------------- collecting issues


def test_every_issue_in_every_file_is_reported_at_once(bundle: Path) -> None:
    replace(bundle / "site.yaml", "kind: suction", "kind: vacuum")
    edit_row(bundle / "stations.csv", "conv1", kind="belt")
    edit_row(bundle / "parts.csv", "KR-CAP-300", mass_kg="-1", color="blue")
    rows = read_rows(bundle / "arrivals.csv")
    rows[1]["timestamp"] = "yesterday"
    write_rows(bundle / "arrivals.csv", rows)
    with pytest.raises(FactoryDataError) as caught:
        load_bundle(bundle)
    issues = caught.value.issues
    find(issues, "site.yaml", "robot.gripper.kind")
    find(issues, "stations.csv", "row 2 (line 3), column kind")
    find(issues, "parts.csv", "row 3 (line 4), column mass_kg")
    find(issues, "parts.csv", "row 3 (line 4), column color")
    find(issues, "arrivals.csv", "row 2 (line 3), column timestamp")
    assert len(issues) == 5, "\n".join(map(str, issues))  # no knock-on issues
    assert [i.file for i in issues] == sorted(
        (i.file for i in issues),
        key=["site.yaml", "stations.csv", "parts.csv", "arrivals.csv"].index,
    )
    message = str(caught.value)
    assert "5 error(s)" in message and all(str(i) in message for i in issues)


def test_invalid_part_row_does_not_cascade_into_references(bundle: Path) -> None:
    edit_row(bundle / "parts.csv", "KR-RLY-200", shape="sphere")
    issues = issues_of(bundle)
    assert len(issues) == 1 and "column shape" in issues[0].location


# ------------------------------------------------------------------------- arrival process


def _arrival(seconds: float, part_id: str, activity: str = "arrive") -> Arrival:
    start = datetime.fromisoformat("2025-03-03T06:00:00+09:00")
    return Arrival(
        timestamp=start + timedelta(seconds=seconds),
        case_id=f"c{seconds}",
        part_id=part_id,
        station_id="conv1",
        activity=activity,
    )


def test_derive_arrival_process_sorts_drops_zero_gaps_and_ignores_other_activities() -> None:
    log = [
        _arrival(10, "B"),
        _arrival(0, "A"),
        _arrival(4, "A"),
        _arrival(4, "B"),
        _arrival(5, "A", activity="pick"),
    ]
    process = derive_arrival_process(log)
    assert process.inter_arrival_s == (4.0, 6.0)
    assert process.part_shares == {"A": 0.5, "B": 0.5}
    assert process.mean_inter_arrival_s == 5.0


@pytest.mark.parametrize("times", [[], [0.0], [3.0, 3.0]])
def test_derive_arrival_process_rejects_degenerate_logs(times: list[float]) -> None:
    with pytest.raises(ValueError):
        derive_arrival_process([_arrival(t, "A") for t in times])


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("ABC")), min_size=2))
def test_derived_process_is_consistent(events: list[tuple[int, str]]) -> None:
    log = [_arrival(t / 10, part) for t, part in events]
    distinct = len({t for t, _ in events})
    if distinct < 2:
        with pytest.raises(ValueError):
            derive_arrival_process(log)
        return
    process = derive_arrival_process(log)
    assert len(process.inter_arrival_s) == distinct - 1
    assert all(gap > 0 for gap in process.inter_arrival_s)
    span = (max(t for t, _ in events) - min(t for t, _ in events)) / 10
    assert sum(process.inter_arrival_s) == pytest.approx(span)
    assert sum(process.part_shares.values()) == pytest.approx(1.0)


def test_the_known_ids_in_a_message_are_cut_to_a_readable_length() -> None:
    from envs.factory.checks import _known

    text = _known(["a" * 5000, "b1", *(f"s{i}" for i in range(20))])
    assert len(text) < 12 * 42 and text.endswith(", ...") and "a" * 37 + "..." in text
