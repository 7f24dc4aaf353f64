"""Overrides naming a missing policy, site or key fail clearly before any trial starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import MissingConfigException

from testbed.campaign.plan import plan_campaign
from testbed.episodes.records import RECORD_GLOB

from .helpers import run_cli


def test_a_missing_policy_option_is_named_before_anything_runs() -> None:
    with pytest.raises(MissingConfigException, match="nowhere-policy"):
        plan_campaign(["policy=nowhere-policy"])


@pytest.mark.parametrize(
    ("override", "named"),
    [("policy=scripted_kr_inprocess,ghost-policy", "ghost-policy"),
     ("site=kr-changwon,atlantis", "atlantis"),
     ("policy.not_a_key=3", "not_a_key")],
)  # fmt: skip
def test_a_sweep_with_a_bad_override_runs_no_trial(
    override: str, named: str, tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", "-m", override, "campaign.episodes=1", "task.max_steps=10",
                      "campaign.progress=false", f"campaign.dir={campaign_dir}"], tmp_path,
                     timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert named in result.stderr
    trials = [p for p in campaign_dir.glob("*") if p.is_dir()] if campaign_dir.exists() else []
    assert not trials and not list(tmp_path.rglob(RECORD_GLOB.split("/")[-1]))
