"""The transfer evaluator: episode records of a campaign -> the transfer matrix.

`testbed.results.episode_table.load_episodes` builds the episode table (one row per record);
`transfer_matrix` aggregates it into a `TransferReport`: rows are policies grouped by home site,
columns are target sites, and each `MatrixCell` holds success with its Wilson interval, retention
with a paired bootstrap interval, the IQM across training seeds, and the KPIs. The interval methods
live in `testbed.results.statistics`.

Conventions (also in docs/campaigns.md, "Reading the report"):
    - Success is ``success_at_end``; an episode that ended on a fault is a failure.
    - Every episode has an outcome reason (`testbed.episodes.outcomes`); each cell counts its failed
      episodes by the reason's category (`MatrixCell.failures`), so the counts add up to its
      failures.
    - Retention pairs episodes of the home and target site by ``(policy_seed, seed)``.
    - Every other KPI of a cell (cycle time, throughput, energy, violations, latency, fault
      counts) is aggregated as its entry of the registry `testbed.results.kpis.KPIS` says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from testbed.episodes.outcomes import UNKNOWN, outcome_category
from testbed.results.by_task import task_of_policy
from testbed.results.kpis import KPIS, KpiValue, column, point
from testbed.results.statistics import (
    Estimate,
    normalised_score,
    paired_retention,
    stratified_bootstrap,
    success_rate,
)


@dataclass(frozen=True)
class FailureReason:
    """Failed episodes of one cell that share an outcome category.

    Attributes:
        category: The group (``lost``, ``time limit``, ``policy fault: deadline``).
        episodes: How many failed episodes of the cell it holds.
        example: One full reason of the group (``lost: KR-CAP-300 at step 695``).
    """

    category: str
    episodes: int
    example: str

    def format(self) -> str:
        """``lost 3`` (what a CSV cell holds)."""
        return f"{self.category} {self.episodes}"


@dataclass(frozen=True)
class MatrixCell:
    """One (policy, target site) cell of the transfer matrix.

    Attributes:
        policy: Policy name.
        home_site: The policy's home site.
        site: Target site.
        episodes: Episodes in the cell.
        successes: Successful episodes (``success_at_end``; faults count as failures).
        success: Success rate with its Wilson interval.
        retention: Success here / success at home, paired bootstrap interval (NaN when the home
            site was not evaluated or had no success).
        normalised: Target-normalised score against the baseline and native policy (or NaN).
        iqm: IQM across training seeds of the per-seed success rate, bootstrap over seeds
            (NaN with fewer than 2 training seeds).
        training_seeds: Distinct training seeds in the cell.
        kpis: KPI name -> value, for every KPI of `testbed.results.kpis.KPIS` (NaN where the records
            lack it); read with `kpi` (or as an attribute: ``cell.energy_per_part_j``).
        failures: The failed episodes by outcome category, most frequent first; their counts
            add up to ``episodes - successes``.
        team: The model team the cell's episodes name (several joined by ``; ``; "" if none).
        policy_id: The id the policy's server reported at the handshake (``PolicySpec``).
        policy_version: The version it reported (several joined by ``; `` if it changed).
    """

    policy: str
    home_site: str
    site: str
    episodes: int
    successes: int
    success: Estimate
    retention: Estimate = field(default_factory=Estimate.undefined)
    normalised: float = math.nan
    iqm: Estimate = field(default_factory=Estimate.undefined)
    training_seeds: int = 0
    kpis: Mapping[str, KpiValue] = field(default_factory=dict, hash=False)
    failures: tuple[FailureReason, ...] = ()
    team: str = ""
    policy_id: str = ""
    policy_version: str = ""

    @property
    def is_home(self) -> bool:
        """True where the target site is the policy's home site."""
        return self.site == self.home_site

    def kpi(self, name: str) -> KpiValue:
        """The value of the KPI called ``name`` (NaN where the records lack it).

        Raises:
            KeyError: If no KPI of that name is registered (the message suggests the closest).
        """
        known = KPIS[name]
        return self.kpis.get(known.name, math.nan)

    if not TYPE_CHECKING:  # checkers see only the declared fields: a typo stays a type error

        def __getattr__(self, name: str) -> KpiValue:
            if name.startswith("_") or name == "kpis" or name not in KPIS:
                raise AttributeError(f"MatrixCell has no attribute {name!r} ({KPIS.unknown(name)})")
            return self.kpi(name)


@dataclass(frozen=True)
class TransferReport:
    """The transfer matrix of a campaign.

    Attributes:
        policies: Row order: policies grouped by home site.
        sites: Column order: target sites.
        home_sites: Policy -> home site.
        cells: ``(policy, site)`` -> cell, for the pairs that were evaluated.
        policy_iqm: Policy -> IQM of per-seed success over all its target sites, with rliable's
            stratified bootstrap (strata = sites); only for policies with 2+ training seeds.
        baseline: The baseline policy of the normalised score, if any.
        confidence: Confidence level of every interval.
        absent_kpis: KPIs that no episode record holds (n/a in every cell: older records, or a
            task that does not report them), as opposed to n/a in a cell that had no data.
        kpi_names: The KPIs that apply to the campaign's tasks (`applicable_kpis`), in registry
            order: what the report's KPI table and charts show.
        tasks: Policy -> its task's label, in a campaign of several tasks (whose policies are
            named with their task, `testbed.results.by_task`; rows are grouped by task first);
            empty for one task.
    """

    policies: tuple[str, ...]
    sites: tuple[str, ...]
    home_sites: dict[str, str]
    cells: dict[tuple[str, str], MatrixCell]
    policy_iqm: dict[str, Estimate] = field(default_factory=dict)
    baseline: str | None = None
    confidence: float = 0.95
    absent_kpis: tuple[str, ...] = ()
    kpi_names: tuple[str, ...] = field(default_factory=lambda: tuple(KPIS))
    tasks: dict[str, str] = field(default_factory=dict)

    def cell(self, policy: str, site: str) -> MatrixCell | None:
        """The cell of ``policy`` at ``site``, or None if that pair was not evaluated."""
        return self.cells.get((policy, site))

    def to_frame(self) -> pd.DataFrame:
        """One row per cell; an interval ``x`` becomes columns ``x``, ``x_low`` and ``x_high``."""
        rows = []
        for policy in self.policies:
            for site in self.sites:
                if (cell := self.cell(policy, site)) is not None:
                    rows.append(_flatten(cell))
        return pd.DataFrame(rows)


def _flatten(cell: MatrixCell) -> dict[str, object]:
    row: dict[str, object] = {}
    for name in MatrixCell.__dataclass_fields__:
        value = getattr(cell, name)
        if name == "failures":
            row[name] = "; ".join(reason.format() for reason in value)
        elif name == "kpis":
            for kpi in KPIS:
                _put(row, kpi, cell.kpi(kpi))
        else:
            _put(row, name, value)
    return row


def _put(row: dict[str, object], name: str, value: object) -> None:
    if isinstance(value, Estimate):
        row.update({name: value.value, f"{name}_low": value.low, f"{name}_high": value.high})
    else:
        row[name] = value


def transfer_matrix(
    episodes: pd.DataFrame, *, baseline: str | None = None, confidence: float = 0.95
) -> TransferReport:
    """Aggregate the episode table into the transfer matrix.

    Args:
        episodes: Rows as from `load_episodes` (needs at least ``policy``, ``home_site``,
            ``site``, ``seed`` and ``success``).
        baseline: Policy whose success at each target is the 0 of the normalised score.
        confidence: Confidence level of every interval.

    Raises:
        ValueError: If the table is empty, lacks a required column, or ``baseline`` is not one
            of its policies.
    """
    df = _checked(episodes, baseline)
    home_sites = df.groupby("policy")["home_site"].first().to_dict()
    sites = tuple(sorted(df["site"].unique()))
    tasks = task_of_policy(df)
    policies = tuple(sorted(home_sites, key=lambda p: (tasks.get(p, ""), home_sites[p], p)))
    cells = {
        (policy, site): _cell(group, df, policy, home_sites[policy], site, confidence)
        for (policy, site), group in df.groupby(["policy", "site"], sort=False)
    }
    cells = _with_normalised(cells, home_sites, baseline)
    policy_iqm = {p: _policy_iqm(df[df["policy"] == p], confidence) for p in policies}
    policy_iqm = {p: e for p, e in policy_iqm.items() if not math.isnan(e.value)}
    applicable = applicable_kpis(df["env_id"].dropna() if "env_id" in df else ())
    absent = _absent_kpis(df, cells.values(), applicable)
    return TransferReport(
        policies,
        sites,
        home_sites,
        cells,
        policy_iqm,
        baseline,
        confidence,
        absent,
        applicable,
        tasks,
    )


def applicable_kpis(env_ids: Iterable[str]) -> tuple[str, ...]:
    """The KPIs that apply to episodes of ``env_ids``, in registry order.

    Every KPI of the env summary or the testbed applies; a task-specific KPI (its ``source``
    names env ids) only where one of its envs ran, so a conveyor campaign shows no insertion
    time.
    """
    ids = {str(env_id) for env_id in env_ids}
    return tuple(
        kpi.name for kpi in KPIS.values() if isinstance(kpi.source, str) or ids & set(kpi.source)
    )


def _absent_kpis(
    df: pd.DataFrame, cells: Iterable[MatrixCell], applicable: tuple[str, ...]
) -> tuple[str, ...]:
    """Applicable KPIs whose column no record has and that are n/a in every cell."""
    cells = list(cells)
    return tuple(
        name
        for name in applicable
        if not KPIS[name].reads(df.columns)
        and all(not math.isfinite(point(cell.kpi(name))) for cell in cells)
    )


def _checked(episodes: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    missing = {"policy", "home_site", "site", "seed", "success"} - set(episodes.columns)
    if missing:
        raise ValueError(f"episode table lacks column(s): {', '.join(sorted(missing))}")
    if episodes.empty:
        raise ValueError("episode table is empty")
    if baseline is not None and baseline not in set(episodes["policy"]):
        known = ", ".join(sorted(episodes["policy"].unique()))
        raise ValueError(f"baseline {baseline!r} is not a policy of the campaign ({known})")
    df = episodes.copy()
    df["success"] = df["success"].fillna(False).astype(bool)
    if "policy_seed" not in df:
        df["policy_seed"] = pd.NA
    df["policy_seed"] = df["policy_seed"].astype(object).where(df["policy_seed"].notna(), -1)
    return df


def _cell(
    group: pd.DataFrame, df: pd.DataFrame, policy: str, home: str, site: str, confidence: float
) -> MatrixCell:
    successes = int(group["success"].sum())
    home_rows = df[(df["policy"] == policy) & (df["site"] == home)]
    return MatrixCell(
        policy=policy,
        home_site=home,
        site=site,
        episodes=len(group),
        successes=successes,
        success=success_rate(successes, len(group), confidence),
        retention=_retention(group, home_rows, confidence),
        iqm=_seed_iqm(group, confidence),
        training_seeds=int(group["policy_seed"].nunique()),
        kpis={kpi.name: kpi.aggregate(group, confidence) for kpi in KPIS.values()},
        failures=_failure_reasons(group[~group["success"]]),
        **_attribution(group),  # type: ignore[arg-type]  # team, policy_id, policy_version
    )


def _attribution(group: pd.DataFrame) -> dict[str, str]:
    """Team, policy id and version of a cell's episodes (records name ``id@version``)."""

    def distinct(values: Iterable[object]) -> str:
        return "; ".join(sorted({str(v) for v in values if isinstance(v, str) and v}))

    ids = [str(v) for v in column(group, "policy_id").dropna() if str(v)]
    return {
        "team": distinct(column(group, "team").dropna()),
        "policy_id": distinct(i.rpartition("@")[0] or i for i in ids),
        "policy_version": distinct(i.rpartition("@")[2] if "@" in i else "" for i in ids),
    }


def _failure_reasons(failed: pd.DataFrame) -> tuple[FailureReason, ...]:
    """Failed episodes by outcome category: count and the first episode's full reason."""
    reasons = column(failed, "outcome").astype(object)
    reasons = reasons.where(reasons.notna() & (reasons.astype(str) != ""), UNKNOWN).astype(str)
    categories = reasons.map(outcome_category)
    groups = [
        FailureReason(category, len(members), str(members.iloc[0]))
        for category, members in reasons.groupby(categories, sort=False)
    ]
    return tuple(sorted(groups, key=lambda g: (-g.episodes, g.category)))


def _per_pair_success(df: pd.DataFrame) -> pd.Series:
    """Success indexed by ``(policy_seed, seed)``: the pairing key of retention."""
    return df.groupby(["policy_seed", "seed"])["success"].mean()


def _retention(target: pd.DataFrame, home: pd.DataFrame, confidence: float) -> Estimate:
    if home.empty:
        return Estimate.undefined()
    paired = pd.concat(
        [_per_pair_success(target).rename("target"), _per_pair_success(home).rename("home")],
        axis=1,
        join="inner",
    )
    return paired_retention(paired["target"], paired["home"], confidence=confidence)


def _seed_scores(df: pd.DataFrame) -> np.ndarray:
    """Per-training-seed success rate (the unit of replication)."""
    return df.groupby("policy_seed")["success"].mean().to_numpy(dtype=np.float64)


def _seed_iqm(group: pd.DataFrame, confidence: float) -> Estimate:
    scores = _seed_scores(group)
    if scores.size < 2:
        return Estimate.undefined()
    return stratified_bootstrap([scores], confidence=confidence)


def _policy_iqm(rows: pd.DataFrame, confidence: float) -> Estimate:
    if rows["policy_seed"].nunique() < 2:
        return Estimate.undefined()
    strata = [_seed_scores(group) for _, group in rows.groupby("site")]
    return stratified_bootstrap(strata, confidence=confidence)


def _with_normalised(
    cells: dict[tuple[str, str], MatrixCell], home_sites: dict[str, str], baseline: str | None
) -> dict[tuple[str, str], MatrixCell]:
    """Fill `MatrixCell.normalised` (native: the best non-baseline policy homed at the target)."""
    if baseline is None:
        return cells
    result = {}
    for (policy, site), cell in cells.items():
        base = cells.get((baseline, site))
        native = max(
            (
                cells[(p, site)].success.value
                for p, home in home_sites.items()
                if home == site and p != baseline and (p, site) in cells
            ),
            default=math.nan,
        )
        base_rate = base.success.value if base else math.nan
        result[(policy, site)] = replace(
            cell, normalised=normalised_score(cell.success.value, base_rate, native)
        )
    return result
