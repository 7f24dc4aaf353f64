"""Every `testbed run`, with or without ``-m``, ends the same way: campaign.json, the summary,
the report; and its exit code says whether every trial of the run finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envs.sites import SITE_DATA

from .helpers import FAST, run_cli

QUICK = [*FAST, "policy=scripted_kr_inprocess", "campaign.episodes=2", "task.max_steps=30"]
SUMMARY = ("trials done", "Success rate [Wilson 95%]", "Largest transfer gaps:",
           "Episodes that did not succeed:")  # fmt: skip


@pytest.fixture
def broken_bundle(tmp_path: Path) -> Path:
    """A bundle with a readable site_id (``broken-plant``) whose layout fails validation."""
    folder = tmp_path / "broken"
    shutil.copytree(SITE_DATA / "kr-changwon", folder)
    site_yaml = folder / "site.yaml"
    text = site_yaml.read_text().replace("site_id: kr-changwon", "site_id: broken-plant")
    site_yaml.write_text(text)
    (folder / "stations.csv").write_text("station_id,kind\nrobot1,robot\n")
    return folder


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


@pytest.mark.parametrize("sweep", [[], ["-m"]], ids=["single", "multirun"])
def test_every_run_ends_with_campaign_json_summary_and_report(
    sweep: list[str], tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", *sweep, *QUICK, f"campaign.dir={campaign_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = _flat(result.stdout)
    assert f"{campaign_dir}: 1/1 trials done, 2 episodes recorded" in out
    assert all(part in out for part in SUMMARY), out
    assert f"testbed episodes {campaign_dir} --failed" in out
    assert f"report: {campaign_dir / 'report.html'}" in out
    assert (campaign_dir / "report.html").is_file() and (campaign_dir / "report.md").is_file()
    campaign = json.loads((campaign_dir / "campaign.json").read_text())
    assert campaign["trials"] == 1 and campaign["name"] == "default"
    assert "policy=scripted_kr_inprocess" in campaign["overrides"]


def test_a_failed_trial_of_a_multirun_exits_1_with_the_summary(
    broken_bundle: Path, tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    sweep = ["-m", *QUICK, f"site.path=kr-changwon,{broken_bundle}", "campaign.report=false"]
    result = run_cli(["run", *sweep, f"campaign.dir={campaign_dir}"], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    out = _flat(result.stdout)
    assert "1/2 trials done, 2 episodes recorded" in out, out
    assert "FactoryDataError" in out  # the table may fold the trial's name: it is below
    assert "success matrix, transfer gaps: not evaluated (campaign.report=false)" in out
    assert f"testbed episodes {campaign_dir} --failed" in out
    assert ("error: 1 of 2 trials of this run did not finish "
            "(scripted_kr_inprocess__broken-plant__s0)") in _flat(result.stderr)  # fmt: skip
    assert "FactoryDataError" in (campaign_dir / "scripted_kr_inprocess__broken-plant__s0"
                                  / "trial.log").read_text()  # fmt: skip
    assert not (campaign_dir / "report.html").exists()  # campaign.report=false: no report


def test_a_failed_single_run_exits_1(broken_bundle: Path, tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", *QUICK, f"site.path={broken_bundle}",
                      f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    out = _flat(result.stdout)
    assert "0/1 trials done" in out and "FactoryDataError" in out
    assert "success matrix, transfer gaps: none (no episode recorded)" in out
    assert (campaign_dir / "campaign.json").is_file()


def test_an_unreachable_policy_exits_1(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", *FAST, "policy=remote", "policy.name=ghost",
                      "policy.home_site=kr-changwon", "policy.address=127.0.0.1:9",
                      "campaign.episodes=1", f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "127.0.0.1:9" in _flat(result.stdout)
