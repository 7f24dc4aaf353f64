"""A co-worker's walkway against the jurisdiction's fence-or-sensing requirement: the same
layout warns where the law asks for a safeguard (KR, US, EU) and not where it does not (JP),
a sensing device or a high enough fence satisfies it, and bad safeguard entries are data
errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.sites  # noqa: F401  (registers the sub-app)
from envs.factory.loader import check_bundle
from envs.safety.safeguards import low_power_exempt, unguarded_walkways
from envs.sites import load_site
from testbed.cli import app
from tests.envs.test_coworker import PERSON, bundle

WHERE = "coworkers[0].walkway"


def guarded(tmp_path: Path, jurisdiction: str, *safeguards: str) -> Path:
    """The co-worker bundle under ``jurisdiction`` with these ``safety.safeguards`` entries."""
    folder = bundle(tmp_path, jurisdiction, PERSON)
    site_yaml = folder / "site.yaml"
    entries = "".join(f"  - {entry}\n" for entry in safeguards)
    text = site_yaml.read_text().replace(
        f"  jurisdiction: {jurisdiction}\n",
        f"  jurisdiction: {jurisdiction}\n" + (f"  safeguards:\n{entries}" if entries else ""),
    )
    site_yaml.write_text(text)
    return folder


def findings(folder: Path) -> list[str]:
    check = check_bundle(folder)
    assert check.errors == (), "\n".join(map(str, check.errors))
    return [str(w) for w in check.warnings if w.location == WHERE]


@pytest.mark.parametrize(
    ("code", "source"),
    [("KR", "Art. 223"), ("US", "ANSI/A3 R15.06-2025"), ("EU", "2023/1230")],
)
def test_an_unguarded_walkway_warns_where_the_law_asks_for_a_safeguard(
    tmp_path: Path, code: str, source: str
) -> None:
    [text] = findings(guarded(tmp_path, code))
    assert f"site.yaml: {WHERE}: expected" in text
    assert f"{code} requires one where a co-worker shares the cell" in text and source in text
    assert "got 'walk1', unguarded" in text


def test_japan_asks_for_no_fence_or_sensing_device(tmp_path: Path) -> None:
    assert findings(guarded(tmp_path, "JP")) == []


@pytest.mark.parametrize("kind", ["safety_scanner", "light_curtain", "pressure_mat"])
def test_a_sensing_device_on_the_walkway_satisfies_it(tmp_path: Path, kind: str) -> None:
    assert findings(guarded(tmp_path, "KR", f"{{name: s1, kind: {kind}, guards: [walk1]}}")) == []


def test_a_fence_must_be_as_high_as_the_jurisdiction_asks(tmp_path: Path) -> None:
    low = "{name: fence1, kind: fence, height_m: 1.2, guards: [walk1]}"
    [text] = findings(guarded(tmp_path / "kr", "KR", low))
    assert "a fence >= 1.8 m or a sensing" in text and "fence fence1 is 1.2 m" in text
    assert findings(guarded(tmp_path / "us", "US", low)) == []  # no height in the US profile
    high = "{name: fence1, kind: fence, height_m: 1.8, guards: [walk1]}"
    assert findings(guarded(tmp_path / "kr2", "KR", high)) == []


def test_the_finding_reaches_the_compliance_verdict(tmp_path: Path) -> None:
    [finding] = unguarded_walkways(load_site(guarded(tmp_path, "KR")))
    assert finding.verdict().startswith(
        "violates: fence or sensing device required by KR (Occupational Safety and Health "
        "Standards Rules Art. 223"
    )
    assert "where a co-worker shares the cell: walkway 'walk1' unguarded" in finding.verdict()


def test_the_shipped_sites_differ_where_the_law_does() -> None:
    # us-austin (US) has a restocker and no safeguard; the others have no co-worker.
    assert [f.walkway for f in unguarded_walkways(load_site("us-austin"))] == ["walk1"]
    for site in ("kr-changwon", "jp-nagoya"):
        assert unguarded_walkways(load_site(site)) == []


def test_sites_check_prints_it_as_a_warning_and_passes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sites", "check", str(guarded(tmp_path, "EU"))])
    assert result.exit_code == 0, result.output
    assert f"warning: site.yaml: {WHERE}: expected a fence or a sensing" in result.output


@pytest.mark.parametrize(
    ("entry", "where", "expected"),
    [
        ("{name: f1, kind: fence, guards: [walk1]}", "safety.safeguards[0]", "height_m"),
        ("{name: s1, kind: safety_scanner, height_m: 2.0, guards: [walk1]}",
         "safety.safeguards[0]", "no height_m"),
        ("{name: s1, kind: laser, guards: [walk1]}", "safety.safeguards[0].kind", "fence"),
        ("{name: s1, kind: safety_scanner, guards: []}", "safety.safeguards[0].guards", "1"),
        ("{name: s1, kind: safety_scanner, guards: [conv1]}", "safety.safeguards[0].guards",
         "is a conveyor"),
    ],
)  # fmt: skip
def test_a_bad_safeguard_is_a_data_error_naming_the_key(
    tmp_path: Path, entry: str, where: str, expected: str
) -> None:
    errors = check_bundle(guarded(tmp_path, "KR", entry)).errors
    assert any(e.file == "site.yaml" and where in e.location and expected in str(e)
               for e in errors), "\n".join(map(str, errors))  # fmt: skip


def test_the_low_power_exemption_is_not_assessed_without_a_cited_motor_rating() -> None:
    assert low_power_exempt("panda", None) is False  # no exemption in the profile
    for model in ("panda", "kuka_iiwa", "xarm6"):
        assert low_power_exempt(model, 80.0) is None  # no cited per-motor rating
