"""The campaign report: episode tables, the transfer matrix, figures, Markdown and HTML.

`write_report` reads a campaign folder (layout in docs/campaigns.md), evaluates it with
`testbed.results.evaluator` and writes ``report.md``, a self-contained ``report.html`` (inline CSS
and script, figures embedded as data URIs, nothing fetched; clips of failed episodes, where
they exist, are files linked by relative paths), ``episodes.csv``,
``episodes.parquet``, ``transfer_matrix.csv`` and the PNG figures. Both documents are rendered
from one list of blocks, so they always say the same thing. Every file is written atomically
(`testbed.atomic`): a report killed midway leaves the previous files, never partial ones.

Records that hold no usable record (damaged, or not a record) are set aside, left out of every
figure and listed with their paths; every failed episode is counted by its outcome reason. The
KPI table and charts show the KPIs of the registry (`testbed.results.kpis`), in its order and
format. Every matrix cell links to the cell's episodes (`testbed.results.episode_pages`); the
campaign section shows the sweep and the shared config (`testbed.results.report_campaign`).
Whether one site predicts another and the leaderboard (`testbed.results.report_ranking`) come
with ``predictivity.csv``, ``leaderboard.csv`` and ``predictivity.png``; safety compliance by
cell and jurisdiction (`testbed.results.report_compliance`) with ``compliance.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from testbed.atomic import atomic_write, atomic_write_text
from testbed.campaign.trial_status import TrialStatus, read_json, trial_statuses, unnamed_unstarted
from testbed.episodes.damaged_records import SetAside, set_aside_headline
from testbed.governance.records import EgressRequest
from testbed.results.attribution import team_blocks
from testbed.results.by_task import name_policies_by_task
from testbed.results.clips import film_failed
from testbed.results.episode_pages import MATRIX_ANCHOR, cell_link, cell_place, episode_sections
from testbed.results.episode_table import load_episodes
from testbed.results.evaluator import MatrixCell, TransferReport, transfer_matrix
from testbed.results.kpis import KPIS
from testbed.results.plots import write_plots
from testbed.results.report_blocks import Block, to_html, to_markdown
from testbed.results.report_campaign import campaign_blocks, versions_blocks
from testbed.results.report_compliance import compliance_blocks
from testbed.results.report_egress import Withheld, gate_report, withheld_blocks
from testbed.results.report_energy import energy_blocks
from testbed.results.report_failures import failure_blocks
from testbed.results.report_ranking import ranking_blocks
from testbed.results.statistics import DEFAULT_RESAMPLES, Estimate

GAPS_LISTED = 5


@dataclass(frozen=True)
class WrittenReport:
    """What `write_report` wrote, and the matrix it evaluated.

    As a string or ``os.PathLike`` it is the path of ``report.html``. ``damaged`` lists the
    records set aside (left out of the matrix), ``skipped`` the unreadable ones left in
    place, ``clip_problems`` the failed episodes that could not be filmed.
    """

    markdown: Path
    html: Path
    episodes_csv: Path
    episodes_parquet: Path
    matrix_csv: Path
    figures: tuple[Path, ...]
    matrix: TransferReport
    damaged: tuple[SetAside, ...] = ()
    skipped: tuple[str, ...] = ()
    clip_problems: tuple[str, ...] = ()
    withheld: tuple[Withheld, ...] = ()

    def __fspath__(self) -> str:
        return str(self.html)

    def __str__(self) -> str:
        return str(self.html)


def write_report(
    campaign_dir: Path,
    out: Path | None = None,
    *,
    baseline: str | None = None,
    clip_seconds: float | None = None,
    egress: EgressRequest | None = None,
) -> WrittenReport:
    """Evaluate a campaign folder and write its report into ``out`` (default: the folder).

    Args:
        campaign_dir: The campaign folder (``campaign.json`` and one folder per trial).
        out: Folder for the report files; created if needed.
        baseline: Policy whose success is the 0 of the target-normalised score.
        clip_seconds: Film the last seconds of every failed episode into ``clips/``
            (`testbed.results.clips`); None films nothing (clips found are shown all the same).
        egress: Who the report is for (`testbed.results.report_egress`); None for each site's
            own operators. Sites whose rules refuse it keep their episode rows and clips.

    Raises:
        TestbedError: If the folder holds no episode records.
        ValueError: If ``baseline`` is not a policy of the campaign.
        OSError: ``cannot write <file>: <reason>``; the files written before stay complete.
    """
    root = Path(campaign_dir)
    out_dir = Path(out) if out is not None else root
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    damaged: list[SetAside] = []
    episodes = name_policies_by_task(load_episodes(root, skipped, damaged))
    matrix = transfer_matrix(episodes, baseline=baseline)
    campaign = read_json(root / "campaign.json")
    recorded = episodes.groupby("trial_dir").size().to_dict() if len(episodes) else {}
    trials = trial_statuses(root, recorded, campaign)
    gated = gate_report(episodes, root, out_dir, egress)
    clip_problems: list[str] = []
    if clip_seconds is not None:
        clip_problems = film_failed(gated.clips, root, out_dir, clip_seconds).problems
    written = WrittenReport(
        markdown=out_dir / "report.md",
        html=out_dir / "report.html",
        episodes_csv=out_dir / "episodes.csv",
        episodes_parquet=out_dir / "episodes.parquet",
        matrix_csv=out_dir / "transfer_matrix.csv",
        figures=tuple(write_plots(matrix, out_dir)),
        matrix=matrix,
        damaged=tuple(damaged),
        skipped=tuple(skipped),
        clip_problems=tuple(clip_problems),
        withheld=gated.withheld,
    )
    shown = gated.records
    atomic_write_text(written.episodes_csv, shown.to_csv(index=False))
    atomic_write(written.episodes_parquet, lambda file: shown.to_parquet(file, index=False))
    atomic_write_text(written.matrix_csv, matrix.to_frame().to_csv(index=False))
    blocks = _document(root, campaign, trials, episodes, written, shown)
    atomic_write_text(written.markdown, to_markdown(blocks))
    atomic_write_text(written.html, to_html(blocks, out_dir, _title(root, campaign)))
    return written


def _title(root: Path, campaign: dict[str, Any] | None) -> str:
    name = (campaign or {}).get("name") or root.resolve().name
    return f"Transfer report: {name}"


def _document(
    root: Path,
    campaign: dict[str, Any] | None,
    trials: list[TrialStatus],
    episodes: pd.DataFrame,
    written: WrittenReport,
    shown: pd.DataFrame,
) -> list[Block]:
    """The report's blocks; per-episode sections show only ``shown`` (what may go)."""
    report = written.matrix
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        ("h1", _title(root, campaign)),
        ("p", f"Generated {generated} from {len(episodes)} episode records in {root}."),
        *_summary(trials, episodes, written, unnamed_unstarted(campaign, trials)),
        *_gaps(report),
        *_matrices(report, written.figures),
        *team_blocks(episodes),
        *_kpis(report, written.figures),
        *energy_blocks(report, episodes),
        *compliance_blocks(episodes, written.html.parent),
        *ranking_blocks(episodes, written.html.parent),
        *failure_blocks(
            trials,
            shown,
            report,
            written.damaged,
            written.skipped,
            unnamed_unstarted(campaign, trials),
        ),
        *withheld_blocks(written.withheld),
        *episode_sections(report, shown, root, written.html.parent),
        *campaign_blocks(campaign, trials),
        *versions_blocks(trials),
        *_method(report),
    ]


def _summary(
    trials: list[TrialStatus], df: pd.DataFrame, written: WrittenReport, unstarted: int
) -> list[Block]:
    report = written.matrix
    counts = pd.Series([t.status for t in trials]).value_counts().to_dict()
    counts["not started"] = counts.get("not started", 0) + unstarted
    states = ", ".join(f"{counts.get(s, 0)} {s}" for s in _STATES)
    groups = "; ".join(
        f"{home}: {', '.join(p for p in report.policies if report.home_sites[p] == home)}"
        for home in dict.fromkeys(report.home_sites[p] for p in report.policies)
    )
    endings = ", ".join(f"{k or '?'} {n}" for k, n in df["ended_by"].value_counts().items())
    items = [
        f"Trials: {len(trials) + unstarted} ({states}).",
        f"Episodes: {len(df)}, {int(df['success'].sum())} successful; ended by: {endings}.",
        f"Policies by home site: {groups}.",
        f"Target sites: {', '.join(report.sites)}.",
        f"Baseline for the normalised score: {report.baseline or 'none (use --baseline)'}.",
    ]
    if written.damaged:
        headline = set_aside_headline(list(written.damaged)).rstrip(":")
        items.insert(2, f"{headline}; listed under What failed.")
    items += [_iqm_line(report, p, e) for p, e in report.policy_iqm.items()]
    return [("h2", "Summary"), ("ul", items)]


def _iqm_line(report: TransferReport, policy: str, estimate: Estimate) -> str:
    """The summary's IQM line, saying which sites it pools (home and transfer targets alike)."""
    sites = sorted({site for p, site in report.cells if p == policy})
    pooled = (
        f"at {sites[0]}"
        if len(sites) == 1
        else f"pooled over {len(sites)} target sites ({', '.join(sites)}); per site below"
    )
    return f"IQM across training seeds, {policy}, {pooled}: {estimate.format()}"


_STATES = ("done", "failed", "unfinished", "not started")


def _gaps(report: TransferReport) -> list[Block]:
    gaps = []
    for cell in report.cells.values():
        policy = cell.policy
        home = report.cell(policy, report.home_sites[policy])
        if home is not None and not cell.is_home:
            gaps.append((home.success.value - cell.success.value, policy, home, cell))
    gaps.sort(key=lambda gap: -gap[0])
    items = [
        f"{policy} (home {home.site}) at {cell.site}: {home.success.value:.2f} -> "
        f"{cell.success.value:.2f} ({-100 * drop:.0f} pp), retention {cell.retention.format()}"
        for drop, policy, home, cell in gaps[:GAPS_LISTED]
        if drop > 0
    ]
    none = "No policy did worse away from home than at home."
    return [("h2", "Largest transfer gaps"), ("ul", items or [none])]


def _matrix(report: TransferReport, text: Callable[[MatrixCell], str]) -> list[Block]:
    """A matrix table, one per task in a campaign of several; every cell links to its episodes."""
    if not report.tasks:
        return [_table(report, report.policies, text)]
    blocks: list[Block] = []
    for task in dict.fromkeys(report.tasks[p] for p in report.policies):
        policies = tuple(p for p in report.policies if report.tasks[p] == task)
        blocks += [("h4", f"Task {task}"), _table(report, policies, text)]
    return blocks


def _table(
    report: TransferReport, policies: tuple[str, ...], text: Callable[[MatrixCell], str]
) -> Block:
    rows = []
    for policy in policies:
        cells = [report.cell(policy, site) for site in report.sites]
        row: list[object] = [policy, report.home_sites[policy]]
        row += [
            "not run" if c is None else cell_link(c, text(c) + (" *" if c.is_home else ""))
            for c in cells
        ]
        rows.append(row)
    return ("table", ["policy", "home site", *report.sites], rows)


def _matrices(report: TransferReport, figures: tuple[Path, ...]) -> list[Block]:
    pct = f"{report.confidence:.0%}"
    blocks: list[Block] = [
        ("h2", "Transfer matrix", MATRIX_ANCHOR),
        (
            "p",
            f"Rows: policies grouped by {'task, then ' if report.tasks else ''}home site; "
            f"columns: target sites; * marks the home "
            f"site. Success is success_at_end (an episode that ended on a fault is a failure), "
            f"shown with its Wilson {pct} interval and successes/episodes. Every cell links to "
            f"its episodes (Episodes by cell).",
        ),
        ("h3", "Success rate"),
        *_matrix(report, lambda c: f"{c.success.format()} {c.successes}/{c.episodes}"),
        ("img", figures[0].name, "success rate heatmap"),
        ("h3", "Retention"),
        (
            "p",
            f"p(target) / p(home) over episodes paired by (training seed, seed), with a paired "
            f"percentile bootstrap {pct} interval; n/a where the home site was not evaluated "
            f"or had no success.",
        ),
        *_matrix(report, lambda c: c.retention.format()),
        ("img", figures[1].name, "retention heatmap"),
    ]
    if report.baseline:
        blocks += [
            ("h3", f"Target-normalised score (baseline {report.baseline})"),
            (
                "p",
                "(p - p_baseline) / (p_native - p_baseline) at each target, where native is "
                "the best non-baseline policy homed there; n/a where undefined.",
            ),
            *_matrix(report, _normalised),
        ]
    if any(not math.isnan(c.iqm.value) for c in report.cells.values()):  # 2+ training seeds
        blocks += [
            ("h3", "IQM of per-seed success across training seeds"),
            *_matrix(report, lambda c: f"{c.iqm.format()} ({c.training_seeds} seeds)"),
        ]
    return blocks


def _normalised(cell: MatrixCell) -> str:
    return "n/a" if math.isnan(cell.normalised) else f"{cell.normalised:.2f}"


def _kpis(report: TransferReport, figures: tuple[Path, ...]) -> list[Block]:
    kpis = [KPIS[name] for name in report.kpi_names]  # those of the campaign's tasks
    cells = [report.cell(p, s) for p in report.policies for s in report.sites]
    rows = [
        [
            c.policy,
            cell_link(c, cell_place(c)),
            str(c.episodes),
            *(k.format(c.kpi(k.name)) for k in kpis),
        ]
        for c in cells
        if c is not None
    ]
    header = ["policy", "site", "n", *(k.column for k in kpis)]
    blocks: list[Block] = [("h2", "KPIs"), ("table", header, rows, "filterable")]
    if report.absent_kpis:
        blocks.append(("p", _absent(report.absent_kpis)))
    return [*blocks, ("img", figures[2].name, "KPI charts")]


def _absent(names: tuple[str, ...]) -> str:
    """Say which n/a columns the records lack entirely (not an empty cell, not a typo)."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(KPIS[name].summary_key, []).append(KPIS[name].column)
    lacking = "; ".join(f"{key} ({', '.join(cols)})" for key, cols in by_key.items())
    return (
        f"n/a in every cell: no episode record holds {lacking} (records of an older testbed, "
        "or of a task that does not report it)."
    )


def _shows_iqm(report: TransferReport) -> bool:
    """Whether the report shows an IQM (it needs two training seeds or more)."""
    cells = any(not math.isnan(c.iqm.value) for c in report.cells.values())
    return cells or bool(report.policy_iqm)


def _method(report: TransferReport) -> list[Block]:
    """How each figure shown was computed: only what the report shows."""
    items = [
        "Success: Wilson score interval (scipy.stats.binomtest).",
        "Retention: paired percentile bootstrap over (training seed, seed) pairs "
        f"(scipy.stats.bootstrap, paired=True, {DEFAULT_RESAMPLES} resamples, fixed seed).",
    ]
    if report.baseline:
        items.append(
            "Target-normalised score: (p - p_baseline) / (p_native - p_baseline), native = the "
            "best non-baseline policy homed at the target."
        )
    if _shows_iqm(report):
        items.append(
            "IQM: scipy.stats.trim_mean(x, 0.25) over per-training-seed success rates, with "
            "rliable's stratified bootstrap (seeds resampled within each site)."
        )
    items.append(
        "Cycle time over successful episodes; throughput over episodes that ended normally; "
        "violations per 1,000 steps pooled over the cell; latency p50 = median of episode p50s, "
        "p99 = worst episode p99."
    )
    return [("h2", "Method"), ("ul", items), ("p", "See docs/campaigns.md, Reading the report.")]
