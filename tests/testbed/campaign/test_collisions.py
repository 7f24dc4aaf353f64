"""Trials of one sweep that would share a folder are refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.campaign.plan import collisions, plan_campaign

from .helpers import FAST, run_cli

QUICK = [*FAST, "policy=scripted_kr_inprocess", "campaign.episodes=1", "task.max_steps=30"]
MODES = ["-m", *QUICK, "policy.mode=unary,stream"]


def test_trials_differing_only_in_a_policy_option_stop_the_run_naming_it(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", *MODES, f"campaign.dir={campaign_dir}"], tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = " ".join(result.stderr.split())  # the usage box wraps lines
    assert "policy.mode ('unary' vs 'stream')" in message
    assert "policy.name=scripted_kr_inprocess_${policy.mode}" in message
    assert not campaign_dir.exists()  # nothing ran, nothing written


def test_a_dry_run_shows_the_collision(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", "--dry-run", *MODES, f"campaign.dir={campaign_dir}"], tmp_path,
                     timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert "same folder as #1" in result.stdout
    assert "error: trials #1 and #2 would both write" in result.stderr
    assert not campaign_dir.exists()


def test_the_suggested_policy_name_gives_each_variant_its_folder(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", *MODES, "policy.name=kr_${policy.mode}", "campaign.report=false",
                      f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    folders = {p.name for p in campaign_dir.iterdir() if p.is_dir()}
    assert folders == {"kr_unary__kr-changwon__s0", "kr_stream__kr-changwon__s0"}
    assert all((campaign_dir / f / "DONE").is_file() for f in folders)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [(["task.max_steps=10,20"], "task.max_steps (10 vs 20)"),
     (["seed=1,1"], "the sweep lists the same trial twice"),
     (["campaign.workers=1,2"], "campaign.workers (1 vs 2), which changes no result")],
)  # fmt: skip
def test_every_kind_of_collision_is_named(sweep: list[str], expected: str, tmp_path: Path) -> None:
    trials = plan_campaign([*sweep, f"campaign.dir={tmp_path}"], multirun=True)
    (problem,) = collisions(trials)
    assert expected in problem and str(tmp_path / trials[0].name) in problem


def test_distinct_trials_do_not_collide(tmp_path: Path) -> None:
    trials = plan_campaign(["site=kr-changwon,jp-nagoya", "seed=0,1", f"campaign.dir={tmp_path}"],
                           multirun=True)  # fmt: skip
    assert len(trials) == 4 and collisions(trials) == []
