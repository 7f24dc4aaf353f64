"""End-of-run summary of a campaign folder: trial statuses and failures, in one place."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from testbed.records import RECORD_GLOB, read_meta


@dataclass(frozen=True)
class TrialStatus:
    """A trial folder's state."""

    name: str
    status: str  # done | failed | unfinished
    episodes: int
    fault_episodes: int
    reason: str = ""


@dataclass(frozen=True)
class CampaignSummary:
    """All trials of a campaign folder, and the faults recorded on their episodes."""

    campaign_dir: Path
    trials: list[TrialStatus]
    faults: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def episodes(self) -> int:
        """Episodes recorded."""
        return sum(t.episodes for t in self.trials)

    @property
    def failed(self) -> list[TrialStatus]:
        """Trials that stopped early or never finished."""
        return [t for t in self.trials if t.status != "done"]


def summarise(campaign_dir: Path) -> CampaignSummary:
    """Read every trial folder under ``campaign_dir``."""
    trials, faults, examples = [], Counter[str](), {}
    for folder in sorted(p for p in Path(campaign_dir).iterdir() if (p / "trial.json").is_file()
                         or (p / "FAILED").is_file()):  # fmt: skip
        fault_episodes = 0
        records = sorted(folder.glob(RECORD_GLOB))
        for path in records:
            meta = read_meta(path)
            fault_episodes += bool(meta.faults)
            for fault in meta.faults:
                faults[fault.kind] += 1
                examples.setdefault(fault.kind, f"{folder.name} ep {meta.episode}: {fault.message}")
        trials.append(_status(folder, len(records), fault_episodes))
    return CampaignSummary(Path(campaign_dir), trials, faults, examples)


def _status(folder: Path, episodes: int, fault_episodes: int) -> TrialStatus:
    if (folder / "DONE").is_file():
        return TrialStatus(folder.name, "done", episodes, fault_episodes)
    reason = "interrupted (no marker): rerun the campaign to resume"
    if (folder / "FAILED").is_file():
        reason = str(_json(folder / "FAILED").get("reason", "unknown"))
        return TrialStatus(folder.name, "failed", episodes, fault_episodes, reason)
    return TrialStatus(folder.name, "unfinished", episodes, fault_episodes, reason)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def print_summary(summary: CampaignSummary, report: Path | None = None) -> None:
    """Print trials, failures and fault kinds; then where the report is."""
    console = Console()
    done = sum(t.status == "done" for t in summary.trials)
    console.print(
        f"[bold]{summary.campaign_dir}[/]: {done}/{len(summary.trials)} trials done, "
        f"{summary.episodes} episodes recorded",
        soft_wrap=True,
    )
    if summary.failed:
        table = Table("trial", "status", "episodes", "reason", title="Trials that did not finish")
        for t in summary.failed:
            table.add_row(t.name, f"[red]{t.status}[/]", str(t.episodes), t.reason)
        console.print(table)
    if summary.faults:
        table = Table("fault", "count", "example", title="Policy faults recorded on episodes")
        for kind, count in summary.faults.most_common():
            table.add_row(kind, str(count), summary.examples[kind][:120])
        console.print(table)
    if report is not None:
        console.print(f"report: [bold]{report}[/]", soft_wrap=True)
