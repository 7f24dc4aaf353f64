"""The report carries only what each site lets out, and says what it withheld and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import testbed.cli.audit  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.report  # noqa: F401  would make it the whole app)
from testbed.cli import app
from testbed.governance.audit import AuditLog
from testbed.governance.gate import GOVERNANCE_DIR_ENV
from testbed.governance.records import EgressRequest
from testbed.results.report import write_report
from tests.testbed.recording import record_episode, write_episode

runner = CliRunner()
KR, US = "kr-changwon", "us-austin"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("campaign")
    for site in (KR, US):
        write_episode(root, record_episode(site, 1, max_steps=15, campaign="gov"))
    return root


@pytest.fixture
def governance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(GOVERNANCE_DIR_ENV, str(tmp_path / "governance"))
    return tmp_path / "governance"


def test_for_the_sites_own_operators_nothing_is_withheld(
    campaign: Path, governance: Path, tmp_path: Path
) -> None:
    written = write_report(campaign, tmp_path / "local")
    assert written.withheld == ()
    assert set(pd.read_csv(written.episodes_csv)["site"]) == {KR, US}
    assert "Withheld" not in written.markdown.read_text()


def test_for_the_coordinator_records_stay_and_a_clearance_lets_them_out(
    campaign: Path, governance: Path, tmp_path: Path
) -> None:
    egress = EgressRequest("coordinator", "alice", "transfer study")
    refused = write_report(campaign, tmp_path / "refused", egress=egress)
    assert pd.read_csv(refused.episodes_csv).empty
    assert set(refused.matrix.sites) == {KR, US}  # aggregate metrics leave
    text = refused.markdown.read_text()
    assert "Withheld by the sites' egress rules" in text
    assert "episode_records of kr-changwon (1 episodes) withheld from 'coordinator'" in text
    assert "governance.egress.episode_records = stays" in text
    clearances = governance / US / "clearances"
    clearances.mkdir(parents=True)
    (clearances / "c.yaml").write_text(
        "id: us-1\nclass: episode_records\nto: coordinator\nbasis: DUA 7\ngranted_by: ops\n"
    )
    cleared = write_report(campaign, tmp_path / "cleared", egress=egress)
    assert set(pd.read_csv(cleared.episodes_csv)["site"]) == {US}
    assert [(w.site, w.artifact_class) for w in cleared.withheld] == [
        (KR, "episode_records"),
        (KR, "images_video"),
        (US, "images_video"),
    ]
    log = AuditLog(governance / US / "audit.jsonl").entries()
    assert [e["decision"] for e in log if e["class"] == "episode_records"][-1] == "allowed"


def test_cli_report_to_a_recipient_prints_what_was_withheld(
    campaign: Path, governance: Path, tmp_path: Path
) -> None:
    args = ["report", str(campaign), "--out", str(tmp_path / "r"), "--to", "coordinator"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "withheld episode_records of kr-changwon" in result.output
