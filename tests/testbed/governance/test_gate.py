"""The egress gate's decisions: local use, each rule, clearances (and bad ones), the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from envs.factory.governance import EgressRules, GovernanceSpec
from testbed.errors import UsageError
from testbed.governance.audit import AuditLog, verify
from testbed.governance.classes import Artifact, Tags, class_of_file
from testbed.governance.gate import Destination, EgressGate, EgressRefused, audit_path

KR = "kr-changwon"
COORDINATOR = Destination("coordinator", Path("/elsewhere/out"))


def artifact(kind: str, name: str = "t1/episodes/ep-000000.npz", redacted: bool = False):
    return Artifact(name, Tags(KR, "KR", kind), redacted)  # type: ignore[arg-type]


def clearance(root: Path, name: str, body: str) -> Path:
    folder = root / KR / "clearances"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")
    return folder / name


CLEARANCE = """\
id: clr-7
class: episode_records
artifacts: ["t1/episodes/*"]
to: coordinator
basis: approval MOTIE 2026-123
granted_by: J. Kim
expires: 2026-12-31
"""


class FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
        return datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def gate(tmp_path: Path) -> EgressGate:
    return EgressGate(tmp_path, {KR: GovernanceSpec(contact="dpo@kr.example")}, FixedClock)


def test_defaults_are_the_designs() -> None:
    rules = EgressRules()
    assert [rules.rule(c) for c in ("raw_factory_data", "episode_records", "model_weights")] == [
        "stays"
    ] * 3
    assert rules.rule("images_video") == "redacted_with_basis"
    assert rules.rule("aggregate_metrics") == "leaves"


def test_the_sites_own_operators_get_everything(gate: EgressGate) -> None:
    for kind in ("raw_factory_data", "episode_records", "images_video", "model_weights"):
        decision = gate.check(artifact(kind), Destination(KR), "op")
        assert decision.allowed and decision.rule == "local"


def test_aggregate_metrics_leave_and_records_stay(gate: EgressGate) -> None:
    assert gate.check(artifact("aggregate_metrics", "matrix"), COORDINATOR, "bob").allowed
    refused = gate.check(artifact("episode_records"), COORDINATOR, "bob")
    assert not refused.allowed and refused.rule == "governance.egress.episode_records = stays"


def test_a_refusal_names_rule_artifact_and_how_to_clear(gate: EgressGate, tmp_path: Path) -> None:
    with pytest.raises(EgressRefused) as caught:
        gate.require(artifact("model_weights", "models/sort.zip"), COORDINATOR, "bob")
    error = caught.value
    assert isinstance(error, UsageError)
    assert "governance.egress.model_weights = stays" in str(error)
    assert "'models/sort.zip' (model_weights of site kr-changwon, KR)" in str(error)
    assert "'coordinator'" in str(error)
    hint = " ".join(error.hints)
    assert "dpo@kr.example" in hint and str(tmp_path / KR / "clearances") in hint


def test_video_leaves_only_redacted_with_a_basis(gate: EgressGate) -> None:
    video = "images_video"
    assert not gate.check(artifact(video), COORDINATOR, "bob", "PIPA Art. 28-8").allowed
    assert not gate.check(artifact(video, redacted=True), COORDINATOR, "bob").allowed
    allowed = gate.check(artifact(video, redacted=True), COORDINATOR, "bob", " consent ")
    assert allowed.allowed and allowed.basis == "consent"


def test_a_site_may_change_its_rules(tmp_path: Path) -> None:
    spec = GovernanceSpec(egress=EgressRules(episode_records="leaves", aggregate_metrics="stays"))
    gate = EgressGate(tmp_path, {KR: spec})
    assert gate.check(artifact("episode_records"), COORDINATOR, "bob").allowed
    assert not gate.check(artifact("aggregate_metrics", "m"), COORDINATOR, "bob").allowed


def test_a_clearance_allows_what_it_covers_and_nothing_else(
    gate: EgressGate, tmp_path: Path
) -> None:
    clearance(tmp_path, "clr-7.yaml", CLEARANCE)
    cleared = gate.check(artifact("episode_records"), COORDINATOR, "bob")
    assert cleared.allowed and cleared.clearance == "clr-7"
    assert cleared.basis == "approval MOTIE 2026-123"
    assert not gate.check(
        artifact("episode_records", "t2/episodes/x.npz"), COORDINATOR, "b"
    ).allowed
    assert not gate.check(artifact("episode_records"), Destination("team-b"), "bob").allowed
    assert not gate.check(artifact("model_weights"), COORDINATOR, "bob").allowed


def test_an_expired_clearance_does_not_clear(tmp_path: Path) -> None:
    clearance(tmp_path, "old.yaml", CLEARANCE.replace("2026-12-31", "2026-05-31"))
    gate = EgressGate(tmp_path, {}, FixedClock)
    assert not gate.check(artifact("episode_records"), COORDINATOR, "bob").allowed


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (CLEARANCE.replace("class: episode_records", "class: records"), "key class: 'records'"),
        (CLEARANCE.replace("basis: approval MOTIE 2026-123\n", ""), "key basis: missing"),
        (CLEARANCE + "scope: all\n", "key scope: 'all'; expected one of id, class"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_a_bad_clearance_is_an_error_naming_file_and_key(
    gate: EgressGate, tmp_path: Path, body: str, expected: str
) -> None:
    path = clearance(tmp_path, "bad.yaml", body)
    with pytest.raises(UsageError) as caught:
        gate.check(artifact("episode_records"), COORDINATOR, "bob")
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_every_decision_is_logged_with_who_and_why(gate: EgressGate, tmp_path: Path) -> None:
    gate.check(artifact("aggregate_metrics", "matrix"), COORDINATOR, "alice", "transfer study")
    gate.check(artifact("episode_records"), COORDINATOR, "bob")
    log = audit_path(tmp_path, KR)
    assert verify(log).intact
    first, second = AuditLog(log).entries()
    assert first["decision"] == "allowed" and second["decision"] == "refused"
    assert (first["requester"], first["basis"], first["recipient"]) == (
        "alice",
        "transfer study",
        "coordinator",
    )
    assert (second["site"], second["jurisdiction"], second["class"]) == (
        KR,
        "KR",
        "episode_records",
    )
    assert first["time"] == "2026-06-01T12:00:00+00:00" and first["path"] == "/elsewhere/out"


def test_files_are_classed_by_kind() -> None:
    assert class_of_file("a/episodes/ep-000001.npz") == "episode_records"
    assert class_of_file("episodes.parquet") == "episode_records"
    assert class_of_file("clip.MP4") == "images_video"
    assert class_of_file("models/sort.zip") == "model_weights"
    assert class_of_file("trial.log") == "logs"
    with pytest.raises(ValueError, match="expected one of"):
        Tags(KR, "KR", "secrets")  # type: ignore[arg-type]
