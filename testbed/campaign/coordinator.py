"""The end of a run of a campaign with per-site stores: trials by site, the coordinator's matrix.

`testbed.campaign.summary.finish_campaign` hands over here when the campaign keeps each site's
trials in the site's own store (`testbed.campaign.stores`). The launching process acts as the
coordinator: it reads each store's trial markers (done, failed and why) but no episode record;
the success matrix it prints and the report it writes come from what each site's egress gate
lets out (`testbed.results.report_federated`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from testbed.campaign.summary import CampaignSummary, _failed_trials
from testbed.campaign.trial_status import TrialStatus, trial_statuses


def finish_federated(campaign_dir: Path, stores: dict[str, Path], write: bool) -> CampaignSummary:
    """Summarise every site's store and write the coordinator's report (if ``write``)."""
    trials: list[TrialStatus] = []
    for _, store in sorted(stores.items()):
        trials += trial_statuses(store)
    summary = CampaignSummary(Path(campaign_dir), trials)
    console = Console(highlight=False)
    done = sum(t.status == "done" for t in trials)
    console.print(f"[bold]{campaign_dir}[/]: {done}/{len(trials)} trials done, "
                  f"{summary.episodes} episodes recorded in {len(stores)} site stores",
                  soft_wrap=True)  # fmt: skip
    for site, store in sorted(stores.items()):
        console.print(f"  {site}: {store} (its operators: testbed episodes {store})",
                      markup=False, soft_wrap=True)  # fmt: skip
    if summary.failed:
        console.print(_failed_trials(summary.failed))
    if not write:
        console.print("success matrix: not evaluated (campaign.report=false)", markup=False)
        return summary
    from testbed.results.report_federated import write_coordinator_report

    try:
        report = write_coordinator_report(Path(campaign_dir), stores)
    except Exception as exc:  # noqa: BLE001  # shown in the summary instead of lost
        console.print(f"success matrix: none: the report failed ({type(exc).__name__}: {exc})",
                      markup=False, soft_wrap=True)  # fmt: skip
        return summary
    console.print(_matrix_table(report.matrix))
    for decision in report.refused:
        console.print(f"withheld by {decision.artifact.tags.site}: {decision.rule}",
                      markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"coordinator's report (what the sites let out): [bold]{report.html}[/]",
                  soft_wrap=True)  # fmt: skip
    return summary


def _matrix_table(matrix: pd.DataFrame) -> Table:
    title = "Success rate [Wilson 95%], as the sites let it out"
    table = Table("policy", "team", "policy id@version", "site", "success", "episodes",
                  title=title, header_style="bold")  # fmt: skip
    for number in (0, 2):
        table.columns[number].overflow = "fold"  # whole names: they are what to look up
    for _, row in matrix.iterrows():
        version = f"{row.get('policy_id') or '-'}@{row.get('policy_version') or '-'}"
        success = f"{row['success']:.0%} [{row['success_low']:.0%}, {row['success_high']:.0%}]"
        table.add_row(str(row["policy"]), str(row.get("team") or "-"), version,
                      str(row["site"]), success, str(int(row["episodes"])))  # fmt: skip
    return table
