"""The report's "Safety compliance" section (`testbed.results.compliance`).

A matrix of each policy against each jurisdiction of the campaign's sites, then one row per
(policy, site) cell: its verdict, how many episodes broke a rule, counts by rule and the worst
episode's readings against the limits, linked to the cell's episodes; then the layouts of the
sites where people enter the cell against the jurisdiction's fence-or-sensing requirement.
``compliance.csv`` beside the report holds the same rows.
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
    return blocks + _layouts(cells)


def _layouts(cells: list[CellCompliance]) -> list[Block]:
    """Sites where people enter the cell: their layouts against the jurisdiction's safeguards."""
    sites = {cell.site: cell.profile for cell in cells if cell.profile.coworkers}
    if not sites:
        return []
    rows = [
        [f"{site} ({profile.jurisdiction})",
         _mark("violates" if profile.layout else "meets"),
         "; ".join(f.removeprefix("violates: ") for f in profile.layout)
         or "no fence-or-sensing finding"]
        for site, profile in sorted(sites.items())
    ]  # fmt: skip
    text = ("Where people walk into the cell, the jurisdiction may ask for a fence or a sensing "
            "protective device (light curtain, safety scanner, pressure mat) in the layout "
            "(site.yaml safety.safeguards). A missing one makes every cell of the site violate, "
            "whatever its episodes did.")  # fmt: skip
    return [("h3", "Site layouts"), ("p", text),
            ("table", ["site (jurisdiction)", "layout", "finding"], rows)]  # fmt: skip


def _row(cell: CellCompliance) -> list[object]:
    counts = ", ".join(f"{RULES[k]} {n}" for k, n in cell.counts.items() if n) or "none"
    if cell.profile.layout:
        counts += f"; site layout {len(cell.profile.layout)} (see Site layouts)"
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
                "layout": "; ".join(c.profile.layout),
                "note": DISCLAIMER,
            }
            for c in cells
        ]  # fmt: skip
    )
