"""Every config preset composes into a valid trial; bad overrides fail before any trial runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hydra.errors import MissingConfigException

from testbed.campaign.folders import config_hashes
from testbed.campaign.plan import plan_campaign
from testbed.config import CONFIG_DIR, validate

from .helpers import compose

CAMPAIGNS = sorted(p.stem for p in (CONFIG_DIR / "campaign").glob("*.yaml"))
SITES = sorted(p.stem for p in (CONFIG_DIR / "site").glob("*.yaml"))
POLICIES = sorted(p.stem for p in (CONFIG_DIR / "policy").glob("*.yaml") if p.stem != "remote")


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_campaign_preset_expands_to_valid_trials(campaign: str, tmp_path) -> None:
    trials = plan_campaign([f"+campaign={campaign}", f"campaign.dir={tmp_path}"])
    assert trials  # a demonstrations preset may be a single trial
    assert len({t.name for t in trials}) == len(trials)  # each trial has its own folder
    for trial in trials:
        validate(trial.config)
        assert trial.status == "new"
        assert trial.folder.parent == tmp_path


def test_transfer_3site_pairs_three_home_sites_with_three_targets(tmp_path) -> None:
    trials = plan_campaign(["+campaign=transfer_3site", f"campaign.dir={tmp_path}"])
    pairs = {(t.config.policy.home_site, t.config.site.id) for t in trials}
    assert pairs == {(h, s) for h in SITES for s in SITES}
    assert all(t.config.policy.kind == "managed" for t in trials)  # served over gRPC
    assert len({tuple(t.config.seeds) for t in trials}) == 1  # paired episodes


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("policy", POLICIES)
def test_every_site_and_policy_option_composes(site: str, policy: str) -> None:
    config = compose([f"site={site}", f"policy={policy}"])
    validate(config)
    assert config.site.id == site and config.policy.name


def test_remote_policy_needs_its_address() -> None:
    config = compose(["policy=remote", "policy.name=team_a", "policy.home_site=jp-nagoya",
                      "policy.address=127.0.0.1:50051"])  # fmt: skip
    validate(config)
    with pytest.raises(Exception, match="address"):
        compose(["policy=remote", "policy.name=team_a", "policy.home_site=jp-nagoya"])


def test_a_missing_site_option_is_named_before_anything_runs() -> None:
    with pytest.raises(MissingConfigException, match="nowhere-plant"):
        plan_campaign(["site=nowhere-plant"])


def test_a_misspelt_key_is_named() -> None:
    with pytest.raises(Exception, match="episdoes"):
        plan_campaign(["campaign.episdoes=3"])


@pytest.mark.parametrize(
    ("override", "key"),
    [("policy.kind=carrier-pigeon", "policy.kind"), ("campaign.episodes=0", "campaign.episodes"),
     ("policy.mode=telepathy", "policy.mode"), ("task.max_steps=0", "task.max_steps")],
)  # fmt: skip
def test_invalid_values_are_named(override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        plan_campaign([override])


def test_hashes_key_results_not_presentation() -> None:
    base = compose([])
    trial, episode = config_hashes(base)
    more = replace(base, campaign=replace(base.campaign, episodes=9, name="other", workers=7))
    assert config_hashes(more)[1] == episode  # same episodes: records are reused
    assert config_hashes(more)[0] != trial  # a different trial: its marker does not match
    moved = replace(base, policy=replace(base.policy, address="127.0.0.1:1"))
    assert config_hashes(moved) == (trial, episode)
    named = replace(base, policy=replace(base.policy, observation_form="named"))
    assert config_hashes(named) == (trial, episode)  # the same arrays reach the policy
    other_site = compose(["site=jp-nagoya"])
    assert config_hashes(other_site)[1] != episode
