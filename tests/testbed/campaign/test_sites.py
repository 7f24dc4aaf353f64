"""A trial's site is named by its bundle's own ``site_id``, whichever way the bundle is chosen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from envs.sites import SITE_DATA
from testbed.campaign.folders import config_hashes
from testbed.campaign.plan import plan_campaign
from testbed.episodes.records import RECORD_GLOB, read_meta

from .helpers import FAST, compose, run_cli

QUICK = [*FAST, "policy=scripted_kr_inprocess", "campaign.episodes=1", "task.max_steps=30"]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of jp-nagoya's bundle that calls itself ``my-plant`` (the folder name differs)."""
    folder = tmp_path / "bundle_copy"
    shutil.copytree(SITE_DATA / "jp-nagoya", folder)
    site_yaml = folder / "site.yaml"
    text = site_yaml.read_text()
    assert "site_id: jp-nagoya\n" in text
    site_yaml.write_text(text.replace("site_id: jp-nagoya\n", "site_id: my-plant\n"))
    return folder


def test_a_bundle_path_alone_takes_the_bundles_site_id(bundle: Path) -> None:
    config = compose([f"site.path={bundle}"])
    assert (config.site.id, config.site.path) == ("my-plant", str(bundle))
    assert config.trial_name == "scripted_kr__my-plant__s0"
    assert compose([f"site.path={bundle}", "site=us-austin"]).site.id == "my-plant"  # path wins
    assert compose([f"site.path={bundle}", "site.id=my-plant"]).site.id == "my-plant"  # agrees


def test_an_id_that_disagrees_with_the_bundle_fails_naming_both(bundle: Path) -> None:
    with pytest.raises(ValueError, match="site.id is 'kr-changwon'") as error:
        plan_campaign([f"site.path={bundle}", "site.id=kr-changwon"])
    assert str(bundle) in str(error.value) and "'my-plant'" in str(error.value)


def test_a_path_that_is_no_bundle_is_named(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="nowhere"):
        plan_campaign([f"site.path={tmp_path / 'nowhere'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="site.yaml"):
        plan_campaign([f"site.path={tmp_path / 'empty'}"])


def test_a_sweep_over_site_path_mixes_shipped_sites_and_your_bundle(bundle: Path) -> None:
    sweep = ["policy=scripted_kr,random", f"site.path=kr-changwon,jp-nagoya,{bundle}"]
    trials = plan_campaign(sweep, multirun=True)
    assert sorted(t.name for t in trials) == sorted(
        f"{p}__{s}__s0" for p in ("scripted_kr", "random") for s in
        ("kr-changwon", "jp-nagoya", "my-plant")
    )  # fmt: skip
    shipped = {t.name: t.config for t in trials}["scripted_kr__jp-nagoya__s0"]
    assert config_hashes(shipped) == config_hashes(compose(["site=jp-nagoya"]))  # one trial


def test_a_campaign_on_your_bundle_labels_folders_records_and_report_with_its_id(
    bundle: Path, tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    result = run_cli(["run", "-m", *QUICK, f"site.path=kr-changwon,{bundle.name}",
                      f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = {"scripted_kr_inprocess__kr-changwon__s0", "scripted_kr_inprocess__my-plant__s0"}
    folders = {p.name for p in campaign_dir.iterdir() if p.is_dir()}
    assert {f for f in folders if not f.startswith(".")} == trials  # .governance: audit logs
    sites = {read_meta(p).site for p in campaign_dir.glob(f"*/{RECORD_GLOB}")}
    assert sites == {"kr-changwon", "my-plant"}
    info = json.loads((campaign_dir / "scripted_kr_inprocess__my-plant__s0/trial.json").read_text())
    assert info["site"] == "my-plant"
    assert set(pd.read_csv(campaign_dir / "episodes.csv")["site"]) == {"kr-changwon", "my-plant"}
