"""What each trial folder of a campaign says about its trial: done, failed, unfinished, planned.

Shared by the end-of-run summary (`testbed.campaign.summary`) and the report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.episodes.records import RECORD_GLOB


@dataclass(frozen=True)
class TrialStatus:
    """What a trial's folder says about it.

    Attributes:
        name: Trial name.
        folder: Folder relative to the campaign (empty when it was never started).
        status: ``done``, ``failed``, ``unfinished`` or ``not started``.
        reason: The failure reason of a failed trial.
        info: The trial's ``trial.json`` (empty if absent).
        recorded: Episode records found.
    """

    name: str
    folder: str
    status: str
    reason: str = ""
    info: dict[str, Any] | None = None
    recorded: int = 0


def trial_statuses(
    root: Path, recorded: dict[str, int] | None = None, campaign: dict[str, Any] | None = None
) -> list[TrialStatus]:
    """Every trial: found by its folder (``trial.json``, a marker or records), or planned.

    Args:
        root: The campaign folder.
        recorded: Episode records per trial folder (relative to ``root``); counted from the
            files when None.
        campaign: The contents of ``campaign.json``, if any.

    When ``campaign.json`` lists the planned trials by name, each one without a folder is added
    as ``not started`` (when it only gives their number, see the report's summary).
    """
    markers = [*root.glob("**/trial.json"), *root.glob("**/FAILED"), *root.glob("**/DONE")]
    if recorded is None:
        records = [p.parent.parent for p in root.glob(f"**/{RECORD_GLOB}")]
        recorded = dict(Counter(p.relative_to(root).as_posix() for p in records))
    folders = {p.parent for p in markers} | {root / d for d in recorded}
    trials = [_trial_status(root, folder, recorded) for folder in sorted(folders)]
    planned = (campaign or {}).get("trials", [])
    if not isinstance(planned, list):
        return trials  # a count: see `unnamed_unstarted`
    seen = {t.name for t in trials} | {Path(t.folder).name for t in trials}
    names = [str(p.get("trial", "")) if isinstance(p, dict) else str(p) for p in planned]
    return trials + [TrialStatus(n, "", "not started") for n in names if n and n not in seen]


def unnamed_unstarted(campaign: dict[str, Any] | None, trials: list[TrialStatus]) -> int:
    """Trials that ``campaign.json`` counts (without naming them) but that have no folder."""
    planned = (campaign or {}).get("trials")
    return max(0, planned - len(trials)) if isinstance(planned, int) else 0


def _trial_status(root: Path, folder: Path, recorded: dict[str, int]) -> TrialStatus:
    relative = folder.relative_to(root).as_posix()
    info = read_json(folder / "trial.json") or {}
    name = str(info.get("trial") or folder.name)
    count = int(recorded.get(relative, 0))
    if (folder / "FAILED").exists():
        failed = read_json(folder / "FAILED") or {}
        reason = str(failed.get("reason") or "no reason given")
        return TrialStatus(name, relative, "failed", reason, info, count)
    status = "done" if (folder / "DONE").exists() else "unfinished"
    return TrialStatus(name, relative, status, "", info, count)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
