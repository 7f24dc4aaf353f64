"""The audit log's hash chain: an edited, a deleted, a moved line and a cut tail are all found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.audit  # noqa: F401  (registers the commands)
from testbed.cli import app
from testbed.governance.audit import GENESIS, AuditLog, head_path, verify

runner = CliRunner()


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    audit = AuditLog(tmp_path / "kr-changwon" / "audit.jsonl")
    for n in range(4):
        audit.append({"decision": "allowed", "artifact": f"t/episodes/ep-{n:06d}.npz"})
    return audit


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text("utf-8").splitlines(keepends=True)


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


def test_an_intact_chain_verifies_and_links_every_line(log: AuditLog) -> None:
    check = verify(log.path)
    assert check.intact and check.lines == 4
    entries = log.entries()
    assert entries[0]["prev"] == GENESIS and [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert json.loads(head_path(log.path).read_text())["hash"] == entries[-1]["hash"]


def test_an_edited_line_is_found(log: AuditLog) -> None:
    lines = _lines(log)
    lines[1] = lines[1].replace('"allowed"', '"refused"')
    _write(log, lines)
    check = verify(log.path)
    assert check.line == 2 and "edited" in str(check.problem)


def test_a_deleted_line_is_found(log: AuditLog) -> None:
    lines = _lines(log)
    del lines[2]
    _write(log, lines)
    check = verify(log.path)
    assert check.line == 3 and "deleted" in str(check.problem)


def test_a_deleted_line_with_renumbered_seq_is_found_by_prev(log: AuditLog) -> None:
    entries = log.entries()
    del entries[1]
    for seq, entry in enumerate(entries, start=1):
        entry["seq"] = seq
    _write(log, [json.dumps(e, sort_keys=True) + "\n" for e in entries])
    check = verify(log.path)
    assert check.line == 2 and "prev" in str(check.problem)


def test_a_cut_tail_is_found_by_the_head(log: AuditLog) -> None:
    _write(log, _lines(log)[:3])
    check = verify(log.path)
    assert check.line == 4 and "tail was cut" in str(check.problem)
    _write(log, [*_lines(log), '{"seq": 4, "pr'])
    assert "cut mid-line" in str(verify(log.path).problem)


def test_appending_to_a_broken_log_is_refused(log: AuditLog) -> None:
    _write(log, _lines(log)[:2])
    with pytest.raises(ValueError, match="broken"):
        log.append({"decision": "allowed"})
    with pytest.raises(ValueError, match="chain"):
        AuditLog(log.path.with_name("other.jsonl")).append({"hash": "x"})


def test_cli_verify_exits_0_intact_and_1_naming_the_line(log: AuditLog, tmp_path: Path) -> None:
    ok = runner.invoke(app, ["audit", "verify", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output and "4 lines" in ok.output
    lines = _lines(log)
    lines[0] = lines[0].replace("ep-000000", "ep-000009")
    _write(log, lines)
    broken = runner.invoke(app, ["audit", "verify", str(log.path)])
    assert broken.exit_code == 1
    assert "error:" in broken.output and "line 1:" in broken.output
    shown = runner.invoke(app, ["audit", "show", str(log.path)])
    assert shown.exit_code == 0 and "ep-000009" in shown.output
    missing = runner.invoke(app, ["audit", "verify", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no audit log" in missing.output


def test_appends_check_the_tail_against_the_head(log: AuditLog) -> None:
    head = head_path(log.path)
    text = head.read_text()
    head.write_text(text.replace('"lines": 4', '"lines": 3'))
    with pytest.raises(ValueError, match="broken"):
        log.append({"decision": "allowed"})
    head.write_text(text)
    for n in range(50):
        log.append({"decision": "refused", "n": n})
    assert verify(log.path).lines == 54


def test_cli_show_names_an_unreadable_log(log: AuditLog) -> None:
    _write(log, [*_lines(log), "not json\n"])
    shown = runner.invoke(app, ["audit", "show", str(log.path)])
    assert shown.exit_code == 1 and "audit verify" in shown.output
