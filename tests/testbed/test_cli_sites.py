"""``testbed sites list`` and ``testbed sites check``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.sites  # noqa: F401  (registers the sub-app)
from envs.sites import SITE_DATA
from testbed.cli import app

runner = CliRunner()


def test_list_shows_every_packaged_site() -> None:
    result = runner.invoke(app, ["sites", "list"])
    assert result.exit_code == 0, result.output
    for expected in (
        "jp-nagoya",
        "kr-changwon",
        "us-austin",
        "kuka_iiwa",
        "xarm6",
        "panda",
        "suction",
        "synthetic",
        "0.06",
    ):
        assert expected in result.output


@pytest.mark.parametrize("target", ["kr-changwon", str(SITE_DATA / "jp-nagoya")])
def test_check_valid_bundle_prints_a_summary(target: str) -> None:
    result = runner.invoke(app, ["sites", "check", target])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ")
    for label in (
        "site:",
        "robot:",
        "stations:",
        "parts:",
        "arrivals:",
        "inter-arrival: mean",
        "part shares:",
        "bundle hash:   sha256:",
    ):
        assert label in result.output
    assert "200 of them 'arrive' events" in result.output


def test_check_bad_bundle_lists_every_issue_and_exits_1(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(SITE_DATA / "kr-changwon", tmp_path / "bad"))
    site_yaml = bundle / "site.yaml"
    site_yaml.write_text(site_yaml.read_text().replace("kind: suction", "kind: vacuum"))
    parts = bundle / "parts.csv"
    parts.write_text(parts.read_text().replace("mass_kg", "mass_g"))
    stations = bundle / "stations.csv"
    stations.write_text(stations.read_text().replace("conv1,conveyor", "conv1,belt"))
    result = runner.invoke(app, ["sites", "check", str(bundle)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"error: bundle {bundle.resolve()}: 3 issue(s)"
    assert lines[1:] == [
        "  - site.yaml: robot.gripper.kind (line 21): expected 'suction' or 'fingers' "
        "(got 'vacuum')",
        "  - stations.csv: row 2 (line 3), column kind: expected 'robot', 'conveyor', "
        "'fixture', 'bin', 'table', 'camera', 'pallet' or 'walkway' (got 'belt')",
        "  - parts.csv: header (line 1), unknown column 7: expected mass_kg (SI units: metres, "
        "kilograms, seconds, radians) (got 'mass_g')",
    ]


def test_check_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sites", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "error: unknown site" in result.output and "or a bundle folder" in result.output


def test_check_a_misspelt_site_id_suggests_the_packaged_one() -> None:
    result = runner.invoke(app, ["sites", "check", "kr-changwn"])
    assert result.exit_code == 2
    assert "did you mean 'kr-changwon'?" in result.output


def test_values_with_markup_characters_are_printed_verbatim(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(SITE_DATA / "us-austin", tmp_path / "b"))
    stations = bundle / "stations.csv"
    stations.write_text(stations.read_text().replace("conv1,conveyor", "conv1,[bold]x[/bold]"))
    result = runner.invoke(app, ["sites", "check", str(bundle)])
    assert result.exit_code == 1
    assert "(got '[bold]x[/bold]')" in result.output


@pytest.mark.parametrize(
    "args",
    [["--help"], ["sites", "--help"], ["sites", "list", "--help"], ["sites", "check", "--help"]],
)
def test_help_works_everywhere(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_sites_without_a_command_shows_help() -> None:
    result = runner.invoke(app, ["sites"])
    assert "list" in result.output and "check" in result.output


def test_export_aml_then_import_aml_builds_the_site(tmp_path: Path) -> None:
    aml = tmp_path / "plant" / "kr.aml"
    result = runner.invoke(app, ["sites", "export-aml", "kr-changwon", str(aml)])
    assert result.exit_code == 0, result.output
    for name in ("kr.aml", "kr.settings.yaml", "kr.arrivals.csv"):
        assert f"wrote {tmp_path / 'plant' / name}" in result.output
    result = runner.invoke(app, ["sites", "import-aml", str(aml), str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {tmp_path / 'bundle'}")
    assert "kr-changwon" in result.output and "pick window:" in result.output
    assert (tmp_path / "bundle" / "stations.csv").is_file()


def test_import_aml_refuses_a_hostile_file_in_one_error(tmp_path: Path) -> None:
    aml = tmp_path / "evil.aml"
    aml.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE CAEXFile [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        '<CAEXFile xmlns="http://www.dke.de/CAEX" SchemaVersion="3.0" FileName="e">&x;</CAEXFile>'
    )
    result = runner.invoke(app, ["sites", "import-aml", str(aml), str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "error: factory bundle" in result.output
    assert "evil.aml: line 2, DOCTYPE: expected no DOCTYPE" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export-aml", "kr-changwon", "x.aml", "--caex-version", "4.0"], "expected 3.0 or 2.15"),
        (["import-aml", "missing.aml", "out"], "CAEX file 'missing.aml': no such file"),
        (["export-aml", "kr-changwn", "x.aml"], "did you mean 'kr-changwon'?"),
    ],
)
def test_aml_commands_refuse_bad_arguments(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sites", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_import_aml_without_settings_says_which_side_file_to_give(tmp_path: Path) -> None:
    aml = SITE_DATA / "kr-changwon.aml"
    log = SITE_DATA / "kr-changwon" / "arrivals.csv"
    result = runner.invoke(
        app, ["sites", "import-aml", str(aml), str(tmp_path / "out"), "--arrivals", str(log)]
    )
    assert result.exit_code == 2, result.output
    assert "site.yaml: control_rate_hz" in result.output
    assert "hint: CAEX carries the layout, parts and robot model only" in result.output
