"""A site's append-only audit log: one JSON object a line, each chained to the line before.

Every line carries ``seq`` (1, 2, ...), ``prev`` (the previous line's ``hash``; 64 zeros on the
first line) and ``hash``: the SHA-256 of ``prev`` and the line's other keys as canonical JSON.
Editing a line breaks its own hash; deleting or reordering lines breaks ``seq`` and ``prev`` of
the next one. A chain alone cannot show a cut tail, so a head file beside the log
(``audit.jsonl.head``) holds the line count and last hash after every append; `verify` compares
the two. Appends take an exclusive lock, so parallel trials and commands may share a log.

Tamper-evident, not tamper-proof: whoever can rewrite the whole log and its head can forge a
consistent chain; keep a copy of the head elsewhere (``testbed audit verify`` prints it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
"""The ``prev`` of the first line."""

_CHAIN_KEYS = ("seq", "prev", "hash")


def _digest(prev: str, body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()


def head_path(log: Path) -> Path:
    """The head file of ``log``: ``{"lines": n, "hash": last hash}``."""
    return log.with_name(log.name + ".head")


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of `verify`.

    Attributes:
        path: The log.
        lines: Lines read.
        last_hash: The hash of the last good line (`GENESIS` for an empty log).
        problem: None when intact, else what is broken, starting with ``line N:``.
        line: The first broken line (1-based), or None.
    """

    path: Path
    lines: int
    last_hash: str
    problem: str | None = None
    line: int | None = None

    @property
    def intact(self) -> bool:
        """Whether the chain and the head agree everywhere."""
        return self.problem is None


class AuditLog:
    """One site's log file (created with its folder on the first append)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Append ``entry`` (JSON-able, without ``seq``, ``prev``, ``hash``); returns the line.

        Raises:
            ValueError: If ``entry`` uses a chain key, or the log's last line does not match
                its head (appending would hide where it broke). Only the tail is checked here
                (reading the whole log per append would be quadratic); `verify` checks all.
        """
        clash = sorted(set(entry) & set(_CHAIN_KEYS))
        if clash:
            raise ValueError(f"audit entry keys {clash} are the chain's own")
        with self._locked():
            state = _tail(self.path) or verify(self.path)
            if not state.intact:
                raise ValueError(
                    f"{self.path}: audit log is broken, not appending: {state.problem}"
                )
            body = {"seq": state.lines + 1, "prev": state.last_hash, **entry}
            line = {**body, "hash": _digest(state.last_hash, body)}
            text = json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n"
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            head = {"lines": state.lines + 1, "hash": line["hash"]}
            tmp = head_path(self.path).with_suffix(".tmp")
            tmp.write_text(json.dumps(head) + "\n", encoding="utf-8")
            os.replace(tmp, head_path(self.path))
        return line

    def entries(self) -> list[dict[str, Any]]:
        """Every line, parsed (no checks; see `verify`)."""
        if not self.path.exists():
            return []
        return [json.loads(text) for text in self.path.read_text("utf-8").splitlines() if text]


def _tail(path: Path) -> AuditCheck | None:
    """The state after the last line when it agrees with the head (read from the end only).

    None when they do not agree, or there is no head: `verify` then reads the whole log and
    says what is wrong. A whole-log check before every append would make appends quadratic.
    """
    try:
        head = json.loads(head_path(path).read_text("utf-8"))
        count, digest = int(head["lines"]), str(head["hash"])
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
            last = handle.read().decode("utf-8").rsplit("\n", 2)
        if len(last) < 2 or last[-1] != "":
            return None
        raw = last[-2] + "\n"
        line = json.loads(raw)
        intact = _check_line(count, raw, str(line["prev"])) is None and line["hash"] == digest
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return AuditCheck(path, count, digest) if intact else None


def verify(path: Path) -> AuditCheck:
    """Check the chain of ``path`` line by line, then the head file.

    A log that does not exist, with no head, is intact and empty.
    """
    path = Path(path)
    prev, seq = GENESIS, 0
    text = path.read_text("utf-8") if path.exists() else ""
    for number, raw in enumerate(text.splitlines(keepends=True), start=1):
        broken = _check_line(number, raw, prev)
        if broken:
            return AuditCheck(path, seq, prev, f"line {number}: {broken}", number)
        prev, seq = json.loads(raw)["hash"], number
    return _check_head(path, seq, prev)


def _check_line(number: int, raw: str, prev: str) -> str | None:
    if not raw.endswith("\n"):
        return "no line end: the log was cut mid-line (truncated tail)"
    try:
        line = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg}): edited or truncated"
    if not isinstance(line, dict) or any(key not in line for key in _CHAIN_KEYS):
        return "not an audit entry (no seq, prev and hash): edited"
    if line["seq"] != number:
        return f"seq is {line['seq']!r}, expected {number}: a line before it was deleted or added"
    if line["prev"] != prev:
        return "prev does not match the hash of the line before: a line was deleted or moved"
    body = {key: value for key, value in line.items() if key != "hash"}
    if _digest(prev, body) != line["hash"]:
        return "hash does not match the line's content: the line was edited"
    return None


def _check_head(path: Path, lines: int, last: str) -> AuditCheck:
    head_file = head_path(path)
    if not head_file.exists():
        if lines == 0:
            return AuditCheck(path, 0, last)
        return AuditCheck(path, lines, last, f"line {lines}: head file {head_file} is missing")
    try:
        head = json.loads(head_file.read_text("utf-8"))
        count, digest = int(head["lines"]), str(head["hash"])
    except (ValueError, KeyError, TypeError):
        return AuditCheck(path, lines, last, f"line {lines}: head file {head_file} is unreadable")
    if count > lines:
        problem = (
            f"line {lines + 1}: missing: the head records {count} lines, the log has {lines} "
            "(the tail was cut)"
        )
        return AuditCheck(path, lines, last, problem, lines + 1)
    if count != lines or digest != last:
        problem = (
            f"line {lines}: the head records {count} lines ending in {digest[:12]}, the log has "
            f"{lines} ending in {last[:12]}: the log or its head was rewritten"
        )
        return AuditCheck(path, lines, last, problem, max(lines, 1))
    return AuditCheck(path, lines, last)
