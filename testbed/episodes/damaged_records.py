"""Damaged episode records: set aside (renamed, never deleted), listed, and recorded again.

A file under an episode record's name that holds no usable record (empty, truncated, corrupt,
or not a record at all) is renamed to ``ep-N.npz.damaged`` by the commands that read a whole
campaign, left out of every figure and listed; the trial runner treats it as missing, so a
rerun of the campaign records that episode again.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from testbed.episodes.records import RECORD_GLOB, RECORD_SUFFIX, RecordError, read_meta

DAMAGED_SUFFIX = ".damaged"
"""Suffix of a record set aside: ``ep-00003.npz.damaged`` (``.2.damaged`` if that is taken)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetAside:
    """A file that was under an episode record's name but held no usable record.

    Attributes:
        record: The record's path (its episode now counts as not recorded).
        reason: What was wrong: ``damaged episode record (empty file)``.
        moved_to: Where the file is now, or None if it could not be moved (see ``note``).
        note: Why it could not be moved.
    """

    record: Path
    reason: str
    moved_to: Path | None = None
    note: str = ""

    def describe(self) -> str:
        """``<record>: <reason>, now <new name>``, or why it is still in place."""
        if self.moved_to is None:
            return f"{self.record}: {self.reason}, could not be moved aside: {self.note}"
        return f"{self.record}: {self.reason}, now {self.moved_to.name}"


def set_aside(error: RecordError) -> SetAside:
    """Move the file of ``error`` aside: ``ep-NNNNN.npz`` -> ``ep-NNNNN.npz.damaged``.

    The file is renamed in its folder (``.<n>.damaged`` if that name is taken), never deleted;
    it then no longer matches `RECORD_GLOB`, so no reader counts it and a rerun of the trial
    records the episode again. Never raises: a file that cannot be moved (a read-only folder)
    is returned with ``moved_to=None`` and the reason in ``note``.
    """
    path = error.path
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.{number}{DAMAGED_SUFFIX}")
    try:
        os.rename(path, target)
    except OSError as exc:
        return SetAside(path, error.reason, None, exc.strerror or str(exc))
    return SetAside(path, error.reason, target)


_SET_ASIDE_NAME = re.compile(
    rf"^(ep-.+?{re.escape(RECORD_SUFFIX)})(?:\.\d+)?{re.escape(DAMAGED_SUFFIX)}$"
)


def set_aside_records(root: Path, pattern: str = f"**/{RECORD_GLOB}") -> list[SetAside]:
    """Records under ``root`` that were set aside and not recorded again since.

    Args:
        root: A campaign or trial folder.
        pattern: The records' glob relative to ``root`` (`RECORD_GLOB` for a trial folder).

    Returns:
        One entry per missing record (the latest file set aside for it), by path; its reason is
        diagnosed again from the file set aside.
    """
    latest: dict[Path, Path] = {}
    for moved in sorted(Path(root).glob(pattern + "*" + DAMAGED_SUFFIX), key=_set_aside_order):
        if match := _SET_ASIDE_NAME.match(moved.name):
            latest[moved.with_name(match.group(1))] = moved
    found = []
    for record, moved in sorted(latest.items()):
        if not record.exists():
            try:
                read_meta(moved, verify=True)
                reason = "set aside by hand"
            except RecordError as error:
                reason = error.reason
            found.append(SetAside(record, reason, moved))
    return found


def _set_aside_order(path: Path) -> tuple[str, int]:
    number = path.name[: -len(DAMAGED_SUFFIX)].rsplit(".", 1)[-1]
    return str(path.parent), int(number) if number.isdigit() else 1


def set_aside_damaged(trial_dir: Path) -> list[Path]:
    """Check every record of a trial (CRC included); set aside those that hold no record.

    The trial runner calls this before it resumes or skips a trial: a damaged record is then
    an episode still to run, never a trial that cannot resume.

    Returns:
        The record paths of the trial that are missing because they were set aside (now, or
        earlier by a report or the episode browser): episodes to run again. Never raises.
    """
    root = Path(trial_dir)
    try:
        for path in sorted(root.glob(RECORD_GLOB)):
            try:
                read_meta(path, verify=True)
            except RecordError as error:
                if error.to_set_aside:
                    aside = set_aside(error)
                    log.warning("set aside %s; the episode runs again", aside.describe())
        return [aside.record for aside in set_aside_records(root, RECORD_GLOB)]
    except OSError as exc:  # the folder itself is unreadable: the runner will say so
        log.warning("%s: cannot check the episode records: %s", root, exc)
        return []


def set_aside_headline(items: list[SetAside]) -> str:
    """``N damaged records set aside, ...:``, the line above their `SetAside.describe` list."""
    noun = "record" if len(items) == 1 else "records"
    return (
        f"{len(items)} damaged {noun} set aside, left out of every figure until a rerun of "
        "the campaign records them again:"
    )


def describe_set_aside(items: list[SetAside]) -> str:
    """`set_aside_headline` and one indented `SetAside.describe` line per record."""
    return "\n".join([set_aside_headline(items), *(f"  {a.describe()}" for a in items)])
