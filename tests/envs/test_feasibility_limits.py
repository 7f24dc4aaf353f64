"""Bundle size limits, the cap on listed issues, and what ``testbed sites check`` prints.

A long production log is refused by size before it is parsed (a 1.5-million-row log used to take
97 s and 3 GB, and a 290,000-row bad one printed every row); at most 50 issues are listed per
file, with the total. The CLI tests live here with the checks they print (tests/testbed holds
the rest of ``testbed sites``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.sites  # noqa: F401  (registers the sub-app)
from envs.errors import FactoryDataError
from envs.factory.limits import LISTED_PER_FILE, MAX_BYTES, MAX_ROWS
from envs.factory.loader import check_bundle, load_bundle
from envs.sites import SITE_DATA
from testbed.cli import app

runner = CliRunner()
HEADER = "timestamp,case_id,part_id,station_id,activity\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SITE_DATA / "kr-changwon", tmp_path / "cell"))


def log_rows(count: int, timestamp: str = "2025-03-03T06:00:00+09:00") -> str:
    return "".join(f"{timestamp},C{i},KR-PCB-100,conv1,arrive\n" for i in range(count))


def test_a_log_over_its_byte_limit_is_refused_unread(bundle: Path) -> None:
    limit = MAX_BYTES["arrivals.csv"]
    with (bundle / "arrivals.csv").open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        handle.write("#" * (limit + 10))  # one line: the parser would choke on it
    start = time.monotonic()
    check = check_bundle(bundle)
    assert time.monotonic() - start < 5.0
    [issue] = check.errors
    assert issue.file == "arrivals.csv" and issue.value == "more than 16 MiB"
    assert "keep a representative stretch of the log" in issue.expected


def test_a_log_over_its_row_limit_is_refused_before_its_rows_are_checked(bundle: Path) -> None:
    rows = MAX_ROWS["arrivals.csv"] + 190_000  # 290,000 rows, each of them invalid
    (bundle / "arrivals.csv").write_text(HEADER + log_rows(rows, "yesterday"), encoding="utf-8")
    start = time.monotonic()
    check = check_bundle(bundle)
    assert time.monotonic() - start < 10.0  # counting rows only: ~1 s on a 2-core machine
    [issue] = check.errors
    assert issue.value == "290,000 data rows" and "at most 100,000 data rows" in issue.expected


def test_at_most_50_issues_per_file_are_listed_with_the_total(bundle: Path) -> None:
    (bundle / "arrivals.csv").write_text(HEADER + log_rows(2_000, "yesterday"), encoding="utf-8")
    check = check_bundle(bundle)
    listed = [e for e in check.errors if e.file == "arrivals.csv"]
    assert len(listed) == LISTED_PER_FILE + 1
    assert listed[-1].location == "1,950 more issue(s) not listed"
    assert listed[-1].value == "2,000 issues in this file"
    assert check.total_errors == 2_000
    with pytest.raises(FactoryDataError) as raised:
        load_bundle(bundle)
    assert len(str(raised.value).splitlines()) == LISTED_PER_FILE + 2  # header, 50, summary


def test_time_step_may_be_written_as_a_fraction(bundle: Path) -> None:
    site = bundle / "site.yaml"
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace("time_step_s: 0.004166666666666667", "time_step_s: 1/240"))
    spec = load_bundle(bundle)
    assert spec.site.physics.time_step_s == 1 / 240 and spec.site.substeps == 8
    site.write_text(text.replace("time_step_s: 0.004166666666666667", "time_step_s: 1/0"))
    with pytest.raises(FactoryDataError, match="a fraction such as 1/240"):
        load_bundle(bundle)


# ---------------------------------------------------------------------- testbed sites check


def test_check_prints_layout_errors_and_exits_1(bundle: Path) -> None:
    stations = bundle / "stations.csv"
    stations.write_text(stations.read_text().replace("bin2,bin,,0.42,-0.1,", "bin2,bin,,5,-0.1,"))
    result = runner.invoke(app, ["sites", "check", str(bundle)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"error: bundle {bundle.resolve()}: 1 issue(s)"
    assert lines[1].startswith("  - stations.csv: row 4 (line 5), station bin2: expected a drop")
    assert "5.00 m from the base axis" in lines[1]


def test_check_prints_warnings_and_exits_0(bundle: Path) -> None:
    site = bundle / "site.yaml"
    site.write_text(site.read_text().replace("max_ee_speed_mps: 0.8", "max_ee_speed_mps: 1.6"))
    result = runner.invoke(app, ["sites", "check", str(bundle)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ")
    assert "  pick window:   conv1 from" in result.output
    assert "warning: site.yaml: robot.controller.max_ee_speed_mps: " in result.output


def test_check_prints_the_total_of_a_capped_list(bundle: Path) -> None:
    (bundle / "arrivals.csv").write_text(HEADER + log_rows(2_000, "yesterday"), encoding="utf-8")
    result = runner.invoke(app, ["sites", "check", str(bundle)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"error: bundle {bundle.resolve()}: 2000 issue(s)"
    assert len(lines) == 1 + LISTED_PER_FILE + 1
    assert lines[-1].startswith("  - arrivals.csv: 1,950 more issue(s) not listed: expected")
