"""The report's "Safety compliance" section (`testbed.results.compliance`).

A matrix of each policy against each jurisdiction of the campaign's sites, then one row per
(policy, site) cell: its verdict, how many episodes broke a rule, counts by rule and the worst
episode's readings against the limits, linked to the cell's episodes. ``compliance.csv`` beside
the report holds the same rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from testbed.atomic import atomic_write_text
from testbed.results.compliance import (
    DISCLAIMER,
    RULES,
    CellCompliance,
    cell_compliance,
    jurisdiction_matrix,
    jurisdictions,
)
from testbed.results.episode_pages import cell_anchor
from testbed.results.report_blocks import Block, Link, Mark

COMPLIANCE_CSV = "compliance.csv"


def compliance_blocks(episodes: pd.DataFrame, out_dir: Path) -> list[Block]:
    """The section's blocks; writes ``compliance.csv`` into ``out_dir``."""
    cells = cell_compliance(episodes)
    atomic_write_text(Path(out_dir) / COMPLIANCE_CSV, _frame(cells).to_csv(index=False))
    blocks: list[Block] = [
        ("h2", "Safety compliance", "compliance"),
        ("p", "Does each policy keep to each site's safety profile? The site's own limits (TCP "
              "speed, contact force, keep-out zones) and, where people work in the cell, its "
              "jurisdiction's co-worker rules (separation, reduced speed, body-region force; "
              "docs/safety.md). A cell meets its profile when none of its episodes broke a "
              f"rule. {DISCLAIMER} Every row: {COMPLIANCE_CSV}."),
    ]  # fmt: skip
    if not cells:
        return [*blocks, ("p", "No episode has a metrics summary to check.")]
    codes = jurisdictions(cells)
    matrix = jurisdiction_matrix(cells)
    header = ["policy", *codes]
    rows = [
        [policy, *(_mark(by_code.get(code, "not evaluated")) for code in codes)]
        for policy, by_code in matrix.items()
    ]
    blocks += [("h3", "Policies by jurisdiction"), ("table", header, rows)]
    header = ["policy", "site (jurisdiction)", "verdict", "episodes with violations",
              "violations by rule", "worst episode"]  # fmt: skip
    blocks += [("h3", "By cell"), ("table", header, [_row(cell) for cell in cells], "filterable")]
    return blocks


def _row(cell: CellCompliance) -> list[object]:
    counts = ", ".join(f"{RULES[k]} {n}" for k, n in cell.counts.items() if n) or "none"
    worst = (
        Link(f"seed {cell.worst_seed}: " + "; ".join(cell.evidence),
             "#" + cell_anchor(cell.policy, cell.site))
        if cell.worst_seed is not None else ""
    )  # fmt: skip
    people = ", people in the cell" if cell.profile.coworkers else ""
    return [
        cell.policy,
        f"{cell.site} ({cell.profile.jurisdiction}{people})",
        _mark(cell.verdict),
        f"{cell.violating}/{cell.episodes}",
        counts,
        worst,
    ]


def _mark(verdict: str) -> object:
    if verdict == "meets":
        return Mark(verdict, "good")
    return Mark(verdict, "bad") if verdict.startswith("violates") else verdict


def _frame(cells: list[CellCompliance]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "policy": c.policy,
                "site": c.site,
                "jurisdiction": c.profile.jurisdiction,
                "coworkers": c.profile.coworkers,
                "verdict": c.verdict,
                "episodes": c.episodes,
                "violating_episodes": c.violating,
                **{f"violations_{k}": n for k, n in c.counts.items()},
                "worst_seed": c.worst_seed,
                "evidence": "; ".join(c.evidence),
                "note": DISCLAIMER,
            }
            for c in cells
        ]  # fmt: skip
    )
