"""The coordinator's report of a campaign with per-site stores: only what the sites let out.

The coordinator reads no record. Each site computes its cells' transfer-matrix rows from its
own store and lets them out through its egress gate (`testbed.campaign.federated`, class
``aggregate_metrics``: ``leaves`` by default, logged in the site's audit log). The report shows
those rows, attributed to the team, policy id and version that ran them, says which sites kept
theirs and under which rule, and names what never leaves a site (episode tables, clips) with
the command a site's own operators use to see it. Cross-site numbers (retention, the normalised
score) need the home cell's episodes from another site and are not shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from testbed.atomic import atomic_write_text
from testbed.campaign.federated import CROSS_SITE, coordinator_release, site_rules
from testbed.campaign.trial_status import read_json, trial_statuses
from testbed.governance.gate import Decision
from testbed.results.kpis import KPIS
from testbed.results.report_blocks import Block, Code, to_html, to_markdown

#: The classes a coordinator's report never carries: they stay in each site's store.
AT_THE_SITE = ("episode_records", "images_video")


@dataclass(frozen=True)
class CoordinatorReport:
    """What `write_coordinator_report` wrote (as a path: ``report.html``).

    Attributes:
        matrix: The rows the sites let out (sorted by policy and site).
        refused: The sites' refusals of their aggregate metrics.
        stores: Site -> its store.
    """

    markdown: Path
    html: Path
    matrix_csv: Path
    matrix: pd.DataFrame
    refused: tuple[Decision, ...]
    stores: dict[str, Path]

    def __fspath__(self) -> str:
        return str(self.html)

    def __str__(self) -> str:
        return str(self.html)


def write_coordinator_report(
    campaign_dir: Path,
    stores: dict[str, Path],
    recipient: str = "coordinator",
    *,
    out: Path | None = None,
    requester: str | None = None,
) -> CoordinatorReport:
    """Ask every site for its aggregates and write ``report.md``/``.html`` and the matrix CSV.

    Args:
        campaign_dir: The campaign folder (``campaign.json``).
        stores: Site id -> its store (`testbed.campaign.stores.campaign_stores`).
        recipient: Who receives the report (the gates' destination).
        out: The report's folder (default: the campaign folder).
        requester: Who asks, for the sites' audit logs (default: the login name).
    """
    root = Path(campaign_dir)
    folder = Path(out) if out is not None else root
    folder.mkdir(parents=True, exist_ok=True)
    matrix, refused = coordinator_release(stores, recipient, requester)
    report = CoordinatorReport(
        markdown=folder / "report.md",
        html=folder / "report.html",
        matrix_csv=folder / "transfer_matrix.csv",
        matrix=matrix,
        refused=tuple(refused),
        stores=dict(stores),
    )
    atomic_write_text(report.matrix_csv, matrix.to_csv(index=False))
    campaign = read_json(root / "campaign.json") or {}
    title = f"Campaign {campaign.get('name') or root.name}: the coordinator's report"
    blocks = _blocks(title, report, recipient)
    atomic_write_text(report.markdown, to_markdown(blocks))
    atomic_write_text(report.html, to_html(blocks, folder, title))
    return report


def _blocks(title: str, report: CoordinatorReport, recipient: str) -> list[Block]:
    sites = ", ".join(sorted(report.stores)) or "none"
    return [
        ("h1", title),
        (
            "p",
            f"Built only from what each site let out to {recipient!r} through its egress "
            f"gate (aggregate metrics, logged in the site's audit log). Sites: {sites}. "
            "No episode record, episode table or clip is in this report: they stay in each "
            "site's store. Retention and the normalised score need another site's episodes "
            "and are not shown.",
        ),  # fmt: skip
        ("h2", "Transfer matrix (what the sites let out)"),
        *_matrix_blocks(report.matrix),
        ("h2", "Withheld by the sites' egress rules"),
        ("ul", _withheld_items(report)),
        ("h2", "Each site's store"),
        _stores_table(report.stores),
    ]


def matrix_columns(matrix: pd.DataFrame) -> list[str]:
    """The KPI columns the rows hold a number in (registry order), cross-site ones left out."""
    return [
        name
        for name in KPIS
        if name in matrix and not name.startswith(CROSS_SITE) and matrix[name].notna().any()
    ]


def _matrix_blocks(matrix: pd.DataFrame) -> list[Block]:
    if matrix.empty:
        return [("p", "none: no site let its aggregate metrics out")]
    kpis = matrix_columns(matrix)
    header = ["policy", "team", "policy id", "version", "home site", "site", "success",
              "episodes", *kpis]  # fmt: skip
    rows = []
    for _, row in matrix.iterrows():
        success = f"{row['success']:.0%} [{row['success_low']:.0%}, {row['success_high']:.0%}]"
        rows.append([
            str(row["policy"]), str(row.get("team") or "-"), str(row.get("policy_id") or "-"),
            str(row.get("policy_version") or "-"), str(row["home_site"]), str(row["site"]),
            success, str(int(row["episodes"])),
            *(_kpi(name, row[name]) for name in kpis),
        ])  # fmt: skip
    caption = ("Each row is one (policy, site) cell, computed at the site from its own records; "
               "team, policy id and version are those the cell's episode records name (the id "
               "and version the policy's server reported at the handshake).")  # fmt: skip
    return [("p", caption), ("table", header, rows)]


def _kpi(name: str, value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"
    kpi = KPIS[name]
    if not math.isfinite(number):
        return "n/a"
    if kpi.fmt.endswith("d"):  # a count: the CSV round trip made it a float
        return kpi.format(round(number))
    return kpi.format(number)


def _withheld_items(report: CoordinatorReport) -> list[str]:
    items = [
        f"{d.artifact.tags.site}: its aggregate metrics ({d.rule}): {d.reason}"
        + (f"; to clear them ask {d.contact}" if d.contact else "")
        for d in report.refused
    ]
    for site in sorted(report.stores):
        _, rules = site_rules(report.stores[site], site)
        kept = ", ".join(
            f"{name} (governance.egress.{name} = {rules.egress.rule(name)})" for name in AT_THE_SITE
        )
        items.append(f"{site}: {kept}: at the site, not part of a coordinator's report")
    return items


def _stores_table(stores: dict[str, Path]) -> Block:
    rows = []
    for site, store in sorted(stores.items()):
        trials = trial_statuses(store)
        done = sum(t.status == "done" for t in trials)
        episodes, report = Code(f"testbed episodes {store}"), Code(f"testbed report {store}")
        rows.append([site, Code(str(store)), f"{done}/{len(trials)} done", episodes, report])
    header = ["site", "store", "trials", "its operators list episodes", "its operators' report"]
    return ("table", header, rows)
