"""End-of-run summary of a campaign folder: trials, failures, success matrix, transfer gaps.

Every `testbed run`, with or without ``-m``, ends with `finish_campaign`: the same summary,
then the report (unless ``campaign.report=false``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from testbed.campaign.stores import campaign_stores
from testbed.campaign.trial_status import TrialStatus, read_json, trial_statuses
from testbed.episodes.records import RECORD_GLOB, read_meta

if TYPE_CHECKING:  # the evaluator pulls in scipy and pandas: only when a run ends
    from testbed.results.evaluator import TransferReport

#: Transfer gaps listed at the end of a run (the report lists the same number).
GAPS_LISTED = 5


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
        try:
            meta = read_meta(path)
        except Exception:  # noqa: BLE001  # a damaged record: the report lists it
            continue
        for fault in meta.faults:
            faults[fault.kind] += 1
            examples.setdefault(fault.kind, f"{meta.trial} ep {meta.episode}: {fault.message}")
    trials = trial_statuses(root, None, read_json(root / "campaign.json"))
    return CampaignSummary(root, trials, faults, examples)


def finish_campaign(campaign_dir: Path, write: bool = True) -> CampaignSummary:
    """Summarise the folder, write its report (if ``write``) and print both.

    The success matrix and transfer gaps come from the report's evaluation, so
    ``campaign.report=false`` (``write`` False) skips them too and costs nothing (no scipy or
    matplotlib import). A report that cannot be written is printed as an error, never raised:
    the rest of the summary still appears.
    """
    stores = campaign_stores(Path(campaign_dir), read_json(Path(campaign_dir) / "campaign.json"))
    if stores:  # per-site stores: the coordinator reads only what the sites let out
        from testbed.campaign.coordinator import finish_federated

        return finish_federated(Path(campaign_dir), stores, write)
    summary = summarise(campaign_dir)
    matrix, report, note = None, None, "not evaluated (campaign.report=false)"
    if not summary.episodes:
        note = "none (no episode recorded)"
    elif write:
        from testbed.results.report import write_report  # imports matplotlib: only when a run ends

        try:
            written = write_report(campaign_dir)
            matrix, report = written.matrix, written.html
        except Exception as exc:  # noqa: BLE001  # shown in the summary instead of lost
            note = f"none: the report failed ({type(exc).__name__}: {exc})"
    print_summary(summary, matrix, report, note)
    return summary


def print_summary(
    summary: CampaignSummary,
    matrix: TransferReport | None = None,
    report: Path | None = None,
    note: str = "",
) -> None:
    """Print the end-of-run summary of a campaign folder.

    Trials and why some did not finish, policy faults, the success matrix and the largest
    transfer gaps (or ``note``: why there are none), the command that lists failed episodes,
    and where the report is.
    """
    console = Console(highlight=False)
    done = sum(t.status == "done" for t in summary.trials)
    console.print(
        f"[bold]{summary.campaign_dir}[/]: {done}/{len(summary.trials)} trials done, "
        f"{summary.episodes} episodes recorded",
        soft_wrap=True,
    )
    if summary.failed:
        console.print(_failed_trials(summary.failed))
    if summary.faults:
        table = Table("fault", "count", "example", title="Policy faults recorded on episodes")
        for kind, count in summary.faults.most_common():
            table.add_row(kind, str(count), summary.examples[kind][:120])
        console.print(table)
    if matrix is None:
        console.print(f"success matrix, transfer gaps: {note}", markup=False, soft_wrap=True)
    else:
        console.print(success_table(matrix))
        console.print("Largest transfer gaps:", style="bold")
        for line in transfer_gaps(matrix):
            console.print(f"  {line}", markup=False, soft_wrap=True)
    if summary.episodes:
        console.print(_failed_episodes(matrix, summary.campaign_dir), markup=False, soft_wrap=True)
    if report is not None:
        console.print(f"report: [bold]{report}[/]", soft_wrap=True)


def _failed_trials(failed: list[TrialStatus]) -> Table:
    table = Table("trial", "status", "episodes", "reason", title="Trials that did not finish")
    table.columns[0].overflow = "fold"  # whole names: they are the folders' names
    for t in failed:
        reason = t.reason or "interrupted: rerun the campaign to resume"
        table.add_row(t.name, f"[red]{t.status}[/]", str(t.recorded), reason)
    return table


def success_table(matrix: TransferReport) -> Table:
    """Success rate per (policy, target site), Wilson interval, episodes; ``*`` at home."""
    table = Table(
        title=f"Success rate [Wilson {matrix.confidence:.0%}], rows: policies by home site, "
        "*: home site",
        header_style="bold",
    )
    table.add_column("policy", overflow="fold")
    table.add_column("home site")
    for site in matrix.sites:
        table.add_column(site, justify="center")
    for policy in matrix.policies:
        row = [policy, matrix.home_sites[policy]]
        for site in matrix.sites:
            cell = matrix.cell(policy, site)
            if cell is None:
                row.append("-")
                continue
            s, mark = cell.success, " *" if cell.is_home else ""
            row.append(f"{s.value:.0%} [{s.low:.0%}, {s.high:.0%}] n={cell.episodes}{mark}")
        table.add_row(*row)
    return table


def transfer_gaps(matrix: TransferReport, limit: int = GAPS_LISTED) -> list[str]:
    """The cells whose success fell the most below their policy's success at home."""
    gaps = []
    for cell in matrix.cells.values():
        home = matrix.cell(cell.policy, matrix.home_sites[cell.policy])
        if home is not None and not cell.is_home:
            gaps.append((home.success.value - cell.success.value, cell.policy, home, cell))
    gaps.sort(key=lambda gap: (-gap[0], gap[1], gap[3].site))
    lines = [
        f"{policy} (home {home.site}) at {cell.site}: {home.success.value:.0%} -> "
        f"{cell.success.value:.0%} ({-100 * drop:+.0f} pp)"
        for drop, policy, home, cell in gaps[:limit]
        if drop > 0
    ]
    if lines:
        return lines
    if not gaps:
        homes = any(c.is_home for c in matrix.cells.values())
        return [f"n/a: no policy ran {'away from' if homes else 'at'} its home site"]
    return ["none: no policy did worse away from home than at home"]


def _failed_episodes(matrix: TransferReport | None, campaign_dir: Path) -> str:
    command = f"testbed episodes {campaign_dir} --failed"
    if matrix is None:
        return f"Episodes that did not succeed: list them with: {command}"
    total = sum(c.episodes for c in matrix.cells.values())
    failed = total - sum(c.successes for c in matrix.cells.values())
    return f"Episodes that did not succeed: {failed} of {total}; list them with: {command}"
