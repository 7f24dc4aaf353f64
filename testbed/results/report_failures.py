"""The report's "What failed" section: trials, records, episodes and policy faults.

Every failed episode is counted once, by its outcome reason, in its cell; trials that failed or
did not finish, records set aside or unreadable, episodes ended by a fault and the cells where
the robot held position for a missed deadline or a rejected action are listed with them.
"""

from __future__ import annotations

import pandas as pd

from testbed.campaign.trial_status import TrialStatus
from testbed.episodes.damaged_records import SetAside, set_aside_headline
from testbed.results.episode_pages import cell_link, cell_place
from testbed.results.evaluator import TransferReport
from testbed.results.kpis import KPIS, point
from testbed.results.report_blocks import Block
from testbed.results.report_campaign import planned, who


def failure_blocks(
    trials: list[TrialStatus],
    episodes: pd.DataFrame,
    report: TransferReport,
    damaged: tuple[SetAside, ...],
    skipped: tuple[str, ...],
    unstarted: int,
) -> list[Block]:
    """The "What failed" section; "Nothing failed" only when nothing did.

    Args:
        trials: The campaign's trials and their status.
        episodes: The episode rows the report may show.
        report: The evaluated matrix.
        damaged: Records set aside as damaged.
        skipped: Records that could not be read.
        unstarted: Planned trials that have no folder.
    """
    blocks = [
        *_trial_failures(trials, unstarted),
        *_record_failures(damaged, skipped),
        *_failed_episodes(report),
        *_episode_faults(episodes, report),
    ]
    if not blocks:  # every cell at 100%: a failed episode always has a reason row
        nothing = "Nothing failed: every trial finished, every episode succeeded, "
        blocks = [("p", nothing + "no deadline was missed and no action was rejected.")]
    return [("h2", "What failed"), *blocks]


def _trial_failures(trials: list[TrialStatus], unstarted: int) -> list[Block]:
    blocks: list[Block] = []
    if unstarted:
        blocks.append(("p", f"{unstarted} planned trial(s) have no folder: never started."))
    failed = [[t.name, *who(t), t.reason] for t in trials if t.status == "failed"]
    if failed:
        blocks += [
            ("h3", "Failed trials"),
            ("table", ["trial", "policy", "site", "reason"], failed),
        ]
    unfinished = [
        [t.name, *who(t), t.status, f"{t.recorded}/{planned(t)}"]
        for t in trials
        if t.status in ("unfinished", "not started")
    ]
    if unfinished:
        header = ["trial", "policy", "site", "status", "episodes recorded"]
        blocks += [("h3", "Unfinished trials"), ("table", header, unfinished)]
    return blocks


def _record_failures(damaged: tuple[SetAside, ...], skipped: tuple[str, ...]) -> list[Block]:
    blocks: list[Block] = []
    if damaged:
        blocks += [
            ("h3", "Damaged records set aside"),
            ("p", set_aside_headline(list(damaged))),
            ("ul", [aside.describe() for aside in damaged]),
        ]
    if skipped:
        blocks += [("h3", "Unreadable records"), ("ul", list(skipped))]
    return blocks


def _failed_episodes(report: TransferReport) -> list[Block]:
    """Every cell below 100%: its failed episodes by outcome reason, with an example."""
    rows = []
    for policy in report.policies:
        for site in report.sites:
            cell = report.cell(policy, site)
            if cell is None or not cell.failures:
                continue
            failed = f"{cell.episodes - cell.successes}/{cell.episodes}"
            rows += [
                [
                    policy,
                    cell_place(cell),
                    cell_link(cell, failed),
                    r.category,
                    str(r.episodes),
                    r.example,
                ]
                for r in cell.failures
            ]
    if not rows:
        return []
    explain = (
        "Every failed episode of every cell, counted once by its outcome reason: policy "
        "fault: <kind> when a policy fault ended it, otherwise the task's reason (a part lost "
        "or in the wrong bin, the time limit with k/n parts sorted). Reasons are grouped with "
        "the part, bin and step left out; the example is one episode's full reason."
    )
    header = ["policy", "site", "failed", "reason", "episodes", "example"]
    return [("h3", "Why episodes failed, by cell"), ("p", explain), ("table", header, rows)]


def _episode_faults(df: pd.DataFrame, report: TransferReport) -> list[Block]:
    blocks: list[Block] = []
    faulted = df[df["ended_by"] == "fault"]
    by_kind = [
        [
            kind or "unknown",
            str(len(group)),
            _cells_of(group),
            str(group["end_fault_message"].iloc[0]),
        ]
        for kind, group in faulted.groupby("end_fault")
    ]
    if by_kind:
        header = ["fault", "episodes", "cells", "example message"]
        blocks += [("h3", "Episodes that ended on a fault"), ("table", header, by_kind)]
    counts = [KPIS["deadline_misses"], KPIS["invalid_actions"]]
    held = [
        [c.policy, c.site, *(k.format(c.kpi(k.name)) for k in counts)]
        for c in report.cells.values()
        if any(point(c.kpi(k.name)) > 0 for k in counts)
    ]
    if held:
        header = ["policy", "site", *(k.column for k in counts)]
        title = "Missed deadlines and rejected actions (the robot held position)"
        blocks += [("h3", title), ("table", header, held)]
    return blocks


def _cells_of(episodes: pd.DataFrame) -> str:
    return ", ".join(sorted(set(episodes["policy"] + " @ " + episodes["site"])))
