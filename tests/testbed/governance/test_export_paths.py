"""Every export path asks the gate: allowed, refused (exit 2, nothing written) and cleared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.export  # noqa: F401  (registers the commands)
import testbed.cli.replay  # noqa: F401
from envs.errors import FactoryDataError
from envs.sites import SITE_DATA, load_site
from testbed.cli import app
from testbed.episodes.records import EpisodeRecord
from testbed.governance.audit import AuditLog, verify
from testbed.governance.gate import GOVERNANCE_DIR_ENV
from testbed.governance.records import site_governance
from tests.testbed.recording import cached_episode, record_episode, write_episode

runner = CliRunner()
DATASET = "testbed/conveyor-sort/kr-changwon-scripted-v0"
KR, US = "kr-changwon", "us-austin"


@pytest.fixture(autouse=True)
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.delenv(GOVERNANCE_DIR_ENV, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def kr_record() -> EpisodeRecord:
    return record_episode(KR, 3, max_steps=20)


def clear(store: Path, site: str, kind: str, name: str = "clr-1") -> None:
    folder = store / ".governance" / site / "clearances"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"id: {name}\nclass: {kind}\nto: coordinator\nbasis: research agreement 2026-04\n"
        "granted_by: site operator\n",
        encoding="utf-8",
    )


def decisions(store: Path, site: str) -> list[str]:
    log = store / ".governance" / site / "audit.jsonl"
    assert verify(log).intact
    return [f"{e['decision']} {e['recipient']} {e['rule']}" for e in AuditLog(log).entries()]


def test_minari_export_refused_cleared_and_local(tmp_path: Path, kr_record: EpisodeRecord) -> None:
    store = tmp_path / "campaign"
    write_episode(store, kr_record)
    export = ["export", "minari", str(store), "--dataset-id", DATASET]
    refused = runner.invoke(app, [*export, "--to", "coordinator", "--basis", "study"])
    assert refused.exit_code == 2
    assert "error: egress refused:" in refused.output
    assert "governance.egress.episode_records = stays" in refused.output
    assert "hint: to clear it" in refused.output
    assert not (tmp_path / "minari").exists()
    clear(store, KR, "episode_records")
    cleared = runner.invoke(app, [*export, "--to", "coordinator", "--requester", "alice"])
    assert cleared.exit_code == 0, cleared.output
    assert (tmp_path / "minari" / DATASET).is_dir()
    local = runner.invoke(app, [*export[:-1], DATASET.replace("v0", "v1")])
    assert local.exit_code == 0, local.output
    assert decisions(store, KR) == [
        "refused coordinator governance.egress.episode_records = stays",
        "allowed coordinator governance.egress.episode_records = stays",
        f"allowed {KR} local",
    ]
    assert AuditLog(store / ".governance" / KR / "audit.jsonl").entries()[1]["clearance"] == "clr-1"


def test_video_refused_redacted_with_basis_and_cleared(tmp_path: Path) -> None:
    store = tmp_path / "campaign"
    path = write_episode(store, cached_episode(US))
    out = tmp_path / "ep.gif"
    film = ["replay", str(path), "--video", str(out), "--size", "64x48", "--fps", "4"]
    film += ["--from-step", "195"]
    refused = runner.invoke(app, [*film, "--to", "coordinator", "--basis", "consent"])
    assert refused.exit_code == 2
    assert "governance.egress.images_video = redacted_with_basis" in refused.output
    assert "not marked redacted" in refused.output
    assert not out.exists()
    redacted = runner.invoke(app, [*film, "--to", "coordinator", "--redacted", "--basis", "c"])
    assert redacted.exit_code == 0, redacted.output
    assert out.exists()
    out.unlink()
    clear(store, US, "images_video")
    cleared = runner.invoke(app, [*film, "--to", "coordinator"])
    assert cleared.exit_code == 0, cleared.output
    assert out.exists()
    assert [d.split()[0] for d in decisions(store, US)] == ["refused", "allowed", "allowed"]


def test_the_bundle_rules_apply_and_bad_ones_are_refused(tmp_path: Path) -> None:
    bundle = tmp_path / KR
    shutil.copytree(SITE_DATA / KR, bundle)
    site_yaml = bundle / "site.yaml"
    text = site_yaml.read_text("utf-8")
    site_yaml.write_text(
        text + "governance:\n  contact: dpo@kr.example\n  jurisdiction: KR\n"
        "  egress:\n    episode_records: leaves\n"
    )
    jurisdiction, rules = site_governance(str(bundle))
    assert rules.egress.episode_records == "leaves" and rules.contact == "dpo@kr.example"
    assert rules.egress.images_video == "redacted_with_basis"
    assert jurisdiction == "KR"
    bad = "governance:\n  jurisdiction: korea\n  egress:\n    images_video: leave\n    cad: stays\n"
    site_yaml.write_text(text + bad)
    with pytest.raises(FactoryDataError) as caught:
        load_site(bundle)
    message = str(caught.value)
    assert "site.yaml: governance.egress.images_video" in message
    assert "'leaves', 'stays' or 'redacted_with_basis'" in message and "'leave'" in message
    assert "governance.egress.cad" in message and "governance.jurisdiction" in message
