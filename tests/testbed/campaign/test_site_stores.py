"""`testbed run` with per-site stores and the local (joblib) launcher: every record stays in
its site's store, the coordinator's report holds what the sites let out (and equals the matrix
of all records for the numbers that may leave), a site's operators browse their own store, and
an interrupted campaign resumes there."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import testbed.cli.episodes  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.replay  # noqa: F401  would make it the whole app)
import testbed.cli.report  # noqa: F401
from testbed.campaign.federated import CROSS_SITE
from testbed.campaign.progress import CampaignMonitor
from testbed.campaign.stores import store_roots
from testbed.cli import app
from testbed.episodes.records import RECORD_GLOB, read_meta, read_record
from testbed.governance.gate import GOVERNANCE_DIR_ENV
from testbed.results.episode_table import load_episodes
from testbed.results.evaluator import transfer_matrix

from .helpers import FAST, run_cli

SITE_DATA = Path(__file__).resolve().parents[3] / "envs" / "site_data"
KR, US = "kr-changwon", "us-austin"
TRIAL = "scripted_kr_inprocess__{}__s0"


def _args(campaign: Path, us_store: Path) -> list[str]:
    return ["run", "-m", "policy=scripted_kr_inprocess", f"site={KR},{US}", "seed=0",
            "campaign.episodes=2", *FAST, "task.max_steps=60", "hydra/launcher=local",
            "campaign.workers=2", "campaign.federated=true", f"campaign.dir={campaign}",
            f"+campaign.stores.{US}={us_store}"]  # fmt: skip


def _records(root: Path) -> dict[Path, str]:
    """Every record under ``root`` and the site it ran at."""
    return {p: read_meta(p).site for p in root.glob(f"**/{RECORD_GLOB}")}


def _text(value: object) -> str:
    return "" if pd.isna(value) else str(value)  # type: ignore[call-overload]


@pytest.fixture(autouse=True)
def _no_shared_governance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GOVERNANCE_DIR_ENV, raising=False)


def test_each_sites_records_stay_in_its_store_and_the_coordinator_gets_the_matrix(
    tmp_path: Path,
) -> None:
    campaign, us_store = tmp_path / "campaign", tmp_path / "us-store"
    kr_store = campaign / "stores" / KR
    result = run_cli(_args(campaign, us_store), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2/2 trials done, 4 episodes recorded in 2 site stores" in result.stdout

    # Every record only in its own site's store; the campaign folder holds none of its own.
    assert set(_records(kr_store).values()) == {KR} and len(_records(kr_store)) == 2
    assert set(_records(us_store).values()) == {US} and len(_records(us_store)) == 2
    outside = set(_records(campaign)) - set(_records(kr_store))
    assert outside == set()
    assert (kr_store / TRIAL.format(KR) / "trial.log").is_file()  # the trial's log stays too
    assert (us_store / TRIAL.format(US) / "DONE").is_file()
    assert not (campaign / "episodes.csv").exists()  # no episode table at the coordinator
    roots = store_roots(campaign, True, {US: str(us_store)})  # what the progress view counts
    assert CampaignMonitor(campaign, 2, 2, lambda: roots).counts() == (2, 4)

    # The coordinator's matrix equals the one built from all records, for what may leave.
    coordinator = pd.read_csv(campaign / "transfer_matrix.csv")
    everything = tmp_path / "everything"  # only the test gathers every record in one place
    for store in (kr_store, us_store):
        for trial in store.glob("*__s0"):
            shutil.copytree(trial, everything / trial.name)
    full = transfer_matrix(load_episodes(everything)).to_frame()
    full = full.sort_values(["policy", "site"], ignore_index=True)
    local = [c for c in full.columns if not str(c).startswith(CROSS_SITE)]
    for name in local:
        mine, theirs = coordinator[name], full[name]
        if pd.api.types.is_numeric_dtype(theirs) and theirs.dtype != bool:
            assert np.allclose(mine.astype(float), theirs.astype(float), equal_nan=True), name
        else:
            assert [_text(v) for v in mine] == [_text(v) for v in theirs], name
    assert coordinator[[c for c in coordinator if str(c).startswith(CROSS_SITE)]].isna().all().all()
    report = (campaign / "report.md").read_text()
    assert "episode_records (governance.egress.episode_records = stays)" in report
    assert f"testbed episodes {us_store}" in report

    # Each site's gate logged the release of its aggregates, in its own store.
    for store, site in ((kr_store, KR), (us_store, US)):
        log = (store / ".governance" / site / "audit.jsonl").read_text()
        assert '"artifact": "matrix"' in log and '"decision": "allowed"' in log

    # A site's operators list (and can replay) their own episodes from their store.
    listing = CliRunner().invoke(app, ["episodes", str(us_store), "--json"])
    assert listing.exit_code == 0, listing.output
    assert TRIAL.format(US) in listing.output and TRIAL.format(KR) not in listing.output
    record = next(iter(_records(us_store)))
    replay = CliRunner().invoke(app, ["replay", str(record), "--json"])
    assert replay.exit_code == 0, replay.output

    # `testbed report` on the campaign folder: the coordinator's report again, not the records.
    again = CliRunner().invoke(app, ["report", str(campaign), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert "coordinator's report" in again.output
    assert (tmp_path / "again" / "report.md").read_text() == report
    refused = CliRunner().invoke(app, ["report", str(campaign), "--clips", "2"])
    assert refused.exit_code == 2 and "use --clips at a site" in refused.output


@pytest.mark.slow  # three more campaign runs in subprocesses (about 30 s on 2 cores)
def test_an_interrupted_campaign_resumes_in_the_site_stores_and_a_withholding_site_is_named(
    tmp_path: Path,
) -> None:
    campaign, us_store = tmp_path / "campaign", tmp_path / "us-store"
    assert run_cli(_args(campaign, us_store), tmp_path).returncode == 0
    trial = us_store / TRIAL.format(US)
    last = trial / "episodes" / "ep-00001.npz"
    before = read_record(last)
    kept = (trial / "episodes" / "ep-00000.npz").stat().st_mtime_ns
    last.unlink()  # as if the campaign was killed before its last episode was written
    (trial / "DONE").unlink()
    resumed = run_cli(_args(campaign, us_store), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (trial / "episodes" / "ep-00000.npz").stat().st_mtime_ns == kept  # not rerun
    assert np.array_equal(read_record(last).actions, before.actions)  # the same episode again
    assert (trial / "DONE").is_file()

    # A site whose bundle keeps its aggregates: the coordinator's report names it and why.
    bundle = tmp_path / "kr-bundle"
    shutil.copytree(SITE_DATA / KR, bundle)
    site_yaml = bundle / "site.yaml"
    site_yaml.write_text(
        site_yaml.read_text("utf-8")
        + "governance:\n  contact: dpo@kr.example\n  egress:\n    aggregate_metrics: stays\n"
    )
    withheld = tmp_path / "withheld"
    single = run_cli(["run", "policy=scripted_kr_inprocess", f"site.path={bundle}",
                      "campaign.episodes=1", *FAST, "task.max_steps=30",
                      "campaign.federated=true", f"campaign.dir={withheld}"], tmp_path)  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    assert "withheld by kr-changwon: governance.egress.aggregate_metrics = stays" in single.stdout
    assert set(_records(withheld / "stores" / KR).values()) == {KR}
    report = (withheld / "report.md").read_text()
    assert "no site let its aggregate metrics out" in report
    rule = "governance.egress.aggregate_metrics = stays"
    assert f"kr-changwon: its aggregate metrics ({rule})" in report
    assert "dpo@kr.example" in report
