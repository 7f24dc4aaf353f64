"""Compliance of each (policy, site) cell with the site's safety profile, and by jurisdiction.

A cell *meets* its site's profile when none of its episodes broke a rule the env checks: the
site's own limits (TCP speed, contact force, keep-out zones) and, where people work in the
cell, the jurisdiction's co-worker rules (speed-and-separation, reduced speed in the
collaborative zone, body-region force limits: docs/safety.md), in a layout that has the
safeguards the jurisdiction asks for where people enter the cell (`envs.safety.safeguards`).
Otherwise it *violates*, with evidence: the layout's findings, and from its worst episode (the
most violations) the seed, counts by rule, and the readings against their limits. The
jurisdiction matrix says, per policy, whether it met the profile at every evaluated site of
each jurisdiction. Every verdict is an indicative simulation check, not a certification.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

SITE_RULES = {"tcp_speed": "TCP speed", "contact_force": "contact force", "keep_out": "keep-out"}
COWORKER_RULES = {
    "ssm": "separation (SSM)",
    "reduced_speed": "reduced speed",
    "pfl": "body-region force (PFL)",
}
RULES = {**SITE_RULES, **COWORKER_RULES}
UNSPECIFIED = "unspecified"
DISCLAIMER = "Indicative simulation checks, not a certification."


@dataclass(frozen=True)
class SiteProfile:
    """What a site's episodes are checked against (from its bundle).

    Attributes:
        jurisdiction: The profile's code (``KR``), or ``unspecified``.
        max_tcp_speed_mps: The site's TCP speed limit.
        max_contact_force_n: The site's contact force limit.
        coworkers: Whether people work in the cell (the co-worker rules apply).
        layout: Site-level findings of the layout against the jurisdiction's national
            requirements (`envs.safety.safeguards`: a co-worker's walkway left without the
            fence or sensing device the law asks for); any one makes every cell of the site
            violate, whatever its episodes did.
    """

    jurisdiction: str = UNSPECIFIED
    max_tcp_speed_mps: float = math.nan
    max_contact_force_n: float = math.nan
    coworkers: bool = False
    layout: tuple[str, ...] = ()


@dataclass
class CellCompliance:
    """One (policy, site) cell's verdict and its evidence."""

    policy: str
    site: str
    profile: SiteProfile
    episodes: int
    violating: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    worst_seed: int | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``meets``, ``violates`` or ``no data`` (no episode with a metrics summary)."""
        if self.episodes == 0:
            return "no data"
        return "violates" if self.violating or self.profile.layout else "meets"


def load_profile(site: str) -> SiteProfile:
    """The profile of a packaged site or bundle folder; an unspecified one if it cannot load."""
    from envs.errors import EnvsError
    from envs.safety.safeguards import unguarded_walkways
    from envs.sites import load_site

    try:
        spec = load_site(site)
    except (EnvsError, OSError):
        return SiteProfile()
    safety = spec.site.safety
    return SiteProfile(
        safety.jurisdiction or UNSPECIFIED,
        safety.max_tcp_speed_mps,
        safety.max_contact_force_n,
        bool(spec.site.coworkers),
        tuple(finding.verdict() for finding in unguarded_walkways(spec)),
    )


def cell_compliance(
    episodes: pd.DataFrame, profile_of: Callable[[str], SiteProfile] = load_profile
) -> list[CellCompliance]:
    """Every (policy, site) cell's verdict, in the table's policy and site order.

    Episodes without a metrics summary (ended on a fault before any) are not counted.
    """
    profiles: dict[str, SiteProfile] = {}
    cells = []
    for (policy, site), rows in episodes.groupby(["policy", "site"], sort=True):
        profile = profiles.setdefault(str(site), profile_of(str(site)))
        cells.append(_cell(str(policy), str(site), profile, rows))
    return cells


def _cell(policy: str, site: str, profile: SiteProfile, rows: pd.DataFrame) -> CellCompliance:
    columns = [f"violations_{rule}" for rule in RULES if f"violations_{rule}" in rows]
    measured = rows.dropna(subset=columns, how="all") if columns else rows.iloc[0:0]
    cell = CellCompliance(policy, site, profile, len(measured))
    if measured.empty:
        return cell
    per_episode = measured[columns].fillna(0).astype(int)
    totals = per_episode.sum(axis=1)
    cell.violating = int((totals > 0).sum())
    cell.counts = {c.removeprefix("violations_"): int(per_episode[c].sum()) for c in columns}
    if cell.violating:
        worst = measured.loc[totals.idxmax()]
        cell.worst_seed = int(worst["seed"])
        cell.evidence = _evidence(worst, profile)
    return cell


def _evidence(row: pd.Series, profile: SiteProfile) -> list[str]:
    """The worst episode's readings against their limits, one line per broken rule."""
    lines = []

    def has(rule: str) -> bool:
        value = row.get(f"violations_{rule}", 0)
        return bool(value == value and value > 0)  # NaN-safe

    if has("tcp_speed"):
        lines.append(f"TCP speed {row.get('peak_tcp_speed_mps', math.nan):.2f} m/s vs "
                     f"{profile.max_tcp_speed_mps:g} m/s ({int(row['violations_tcp_speed'])} "
                     "steps)")  # fmt: skip
    if has("contact_force"):
        lines.append(f"contact force {row.get('peak_contact_force_n', math.nan):.0f} N vs "
                     f"{profile.max_contact_force_n:g} N")  # fmt: skip
    if has("keep_out"):
        lines.append(f"keep-out zone entered ({int(row['violations_keep_out'])} steps)")
    if has("ssm"):
        margin = row.get("min_ssm_margin_m", math.nan)
        steps = int(row["violations_ssm"])
        lines.append(f"separation {row.get('min_separation_m', math.nan):.2f} m, "
                     f"{-margin:.2f} m inside S_p ({steps} steps)")  # fmt: skip
    if has("reduced_speed"):
        lines.append(f"faster than the reduced speed with a person in the zone "
                     f"({int(row['violations_reduced_speed'])} steps)")  # fmt: skip
    if has("pfl"):
        lines.append(f"{row.get('pfl_peak_force_n', math.nan):.0f} N on "
                     f"{str(row.get('pfl_peak_region', '')).replace('_', ' ')}")  # fmt: skip
    return lines


def jurisdiction_matrix(cells: list[CellCompliance]) -> dict[str, dict[str, str]]:
    """Policy -> jurisdiction -> ``meets`` / ``violates at k of n sites`` (sites with data)."""
    matrix: dict[str, dict[str, list[CellCompliance]]] = {}
    for cell in cells:
        if cell.verdict != "no data":
            matrix.setdefault(cell.policy, {}).setdefault(cell.profile.jurisdiction, []).append(
                cell
            )
    return {
        policy: {code: _verdict(group) for code, group in sorted(by_code.items())}
        for policy, by_code in matrix.items()
    }


def _verdict(cells: list[CellCompliance]) -> str:
    bad = sum(cell.verdict == "violates" for cell in cells)
    return "meets" if not bad else f"violates at {bad} of {len(cells)} site(s)"


def jurisdictions(cells: list[CellCompliance]) -> list[str]:
    """The jurisdictions of the cells' sites, sorted (``unspecified`` last)."""
    codes = {cell.profile.jurisdiction for cell in cells}
    return sorted(codes - {UNSPECIFIED}) + ([UNSPECIFIED] if UNSPECIFIED in codes else [])


def summary_counts(cells: list[CellCompliance]) -> Mapping[str, int]:
    """Cells by verdict."""
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    return counts
