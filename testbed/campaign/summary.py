"""End-of-run summary of a campaign folder: trial statuses and failures, in one place."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from testbed.records import RECORD_GLOB, read_meta
from testbed.trial_status import TrialStatus, read_json, trial_statuses


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
        return sum(t.recorded for t in self.trials)

    @property
    def failed(self) -> list[TrialStatus]:
        """Trials that stopped early, never finished or never started."""
        return [t for t in self.trials if t.status != "done"]


def summarise(campaign_dir: Path) -> CampaignSummary:
    """Read every trial folder under ``campaign_dir`` and the faults on its records."""
    root = Path(campaign_dir)
    faults: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for path in sorted(root.glob(f"*/{RECORD_GLOB}")):
        meta = read_meta(path)
        for fault in meta.faults:
            faults[fault.kind] += 1
            examples.setdefault(fault.kind, f"{meta.trial} ep {meta.episode}: {fault.message}")
    trials = trial_statuses(root, None, read_json(root / "campaign.json"))
    return CampaignSummary(root, trials, faults, examples)


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
            reason = t.reason or "interrupted: rerun the campaign to resume"
            table.add_row(t.name, f"[red]{t.status}[/]", str(t.recorded), reason)
        console.print(table)
    if summary.faults:
        table = Table("fault", "count", "example", title="Policy faults recorded on episodes")
        for kind, count in summary.faults.most_common():
            table.add_row(kind, str(count), summary.examples[kind][:120])
        console.print(table)
    if report is not None:
        console.print(f"report: [bold]{report}[/]", soft_wrap=True)
