"""The leaderboard: Bradley-Terry ratings from paired episodes, and rliable's comparisons.

Bradley-Terry (`testbed.results.bradley_terry`): two policies are compared on every episode
they both ran with the same seed at the same site (and task, where the table has a ``task`` or
``env_id`` column); a policy with several training seeds contributes its mean success over
them. The one that succeeded where the other failed wins; both succeeding or both failing is a
tie, half a win to each. One virtual tie per pair of policies (``prior``) keeps the rating of a
policy that never lost finite. Ratings are on the natural log-odds scale, centred to mean 0:
``P(A beats B) = sigmoid(theta_A - theta_B)``. Intervals: percentile bootstrap over the paired
units (task, site, seed), resampled with replacement within each (task, site), refitting the
ratings on every resample. Ratings are given per task and overall (every task pooled).

rliable's probability of improvement between every two policies and each policy's
performance profile (`testbed.results.run_comparisons`) complete it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from testbed.results import bradley_terry
from testbed.results.predictivity import percentile_estimate
from testbed.results.run_comparisons import EPISODE_UNIT, run_scores
from testbed.results.statistics import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate

OVERALL = "overall"
TAUS = (0.0, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Rating:
    """One policy's Bradley-Terry rating in one scope (a task, or overall).

    Attributes:
        policy: Policy name.
        rating: Log-odds rating (mean 0) with its bootstrap interval; NaN if it met no policy.
        wins: Paired comparisons it won.
        losses: Paired comparisons it lost.
        ties: Paired comparisons that ended level (both succeeded or both failed).
    """

    policy: str
    rating: Estimate
    wins: float
    losses: float
    ties: float

    @property
    def comparisons(self) -> float:
        """Paired comparisons it took part in."""
        return self.wins + self.losses + self.ties


@dataclass(frozen=True)
class Leaderboard:
    """Ratings per scope, probability of improvement and performance profiles.

    Attributes:
        ratings: Scope (``overall`` or a task) -> ratings, best first (unrated last).
        improvement: ``(X, Y)`` -> ``P(X > Y)`` with its interval, for every ordered pair of
            policies that share a (task, site).
        profiles: Policy -> the fraction of its runs above each of ``taus``.
        taus: Thresholds of the profiles.
        unit: What a run is: ``training seed`` or ``episode``.
        tasks: The tasks (one ``all`` when the table names none).
        confidence: Confidence level of every interval.
        prior: Virtual ties per pair of policies in the Bradley-Terry fit.
        policies: Every policy of the table, in name order (the order of the tables).
    """

    ratings: dict[str, tuple[Rating, ...]]
    improvement: dict[tuple[str, str], Estimate]
    profiles: dict[str, tuple[Estimate, ...]]
    taus: tuple[float, ...] = TAUS
    unit: str = EPISODE_UNIT
    tasks: tuple[str, ...] = ("all",)
    confidence: float = 0.95
    prior: float = 1.0
    policies: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per rating, comparison and profile point.

        Columns: ``statistic`` (``bradley_terry``, ``prob_improvement``, ``profile``),
        ``scope`` (task or overall), ``policy``, ``other`` (Y of ``P(policy > Y)``), ``tau``,
        ``rank``, ``value``, ``low``, ``high``, ``wins``, ``losses``, ``ties``, ``unit``.
        Undefined values are NaN (empty in a CSV).
        """
        rows: list[dict[str, object]] = []
        for scope, ratings in self.ratings.items():
            for rank, r in enumerate(ratings, start=1):
                rows.append(
                    _row("bradley_terry", scope, r.policy, r.rating)
                    | {"rank": rank if math.isfinite(r.rating.value) else math.nan}
                    | {"wins": r.wins, "losses": r.losses, "ties": r.ties}
                )
        for (x, y), estimate in self.improvement.items():
            rows.append(_row("prob_improvement", OVERALL, x, estimate) | {"other": y})
        for policy, points in self.profiles.items():
            for tau, estimate in zip(self.taus, points, strict=True):
                rows.append(_row("profile", OVERALL, policy, estimate) | {"tau": tau})
        columns = [
            "statistic", "scope", "policy", "other", "tau", "rank", "value", "low", "high",
            "wins", "losses", "ties", "unit",
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns).assign(unit=self.unit)


def _row(statistic: str, scope: str, policy: str, estimate: Estimate) -> dict[str, object]:
    return {
        "statistic": statistic,
        "scope": scope,
        "policy": policy,
        "value": estimate.value,
        "low": estimate.low,
        "high": estimate.high,
    }


def leaderboard(
    episodes: pd.DataFrame,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    prior: float = 1.0,
    taus: tuple[float, ...] = TAUS,
) -> Leaderboard:
    """The leaderboard of the episode table.

    Args:
        episodes: Rows as from `testbed.results.episode_table.load_episodes` (needs ``policy``,
            ``site``, ``seed`` and ``success``; ``policy_seed`` and ``task`` or ``env_id`` are
            used where present).
        confidence: Confidence level of the intervals.
        n_resamples: Bootstrap resamples (0: point estimates only).
        seed: Seed of the bootstrap's random generator (results are reproducible).
        prior: Virtual ties per pair of policies in the Bradley-Terry fit (0: maximum
            likelihood, infinite for a policy that never lost).
        taus: Thresholds of the performance profiles.

    Raises:
        ValueError: If the table lacks a required column.
    """
    df = _prepared(episodes)
    policies = tuple(sorted(df["policy"].unique()))
    tasks = tuple(sorted(df["task"].unique()))
    rng = np.random.default_rng(seed)
    scopes = [OVERALL, *tasks] if len(tasks) > 1 else [OVERALL]
    ratings = {
        scope: _ratings(
            df if scope == OVERALL else df[df["task"] == scope],
            policies,
            prior,
            confidence,
            n_resamples,
            rng,
        )
        for scope in scopes
    }
    runs = run_scores(df, n_resamples, rng, confidence)
    pairs = ((x, y, runs.improvement(x, y)) for x in policies for y in policies if x != y)
    improvement = {(x, y): estimate for x, y, estimate in pairs if estimate is not None}
    profiles = {p: tuple(runs.profile(p, tau) for tau in taus) for p in policies}
    return Leaderboard(
        ratings, improvement, profiles, taus, runs.unit, tasks, confidence, prior, policies
    )


def _prepared(episodes: pd.DataFrame) -> pd.DataFrame:
    missing = {"policy", "site", "seed", "success"} - set(episodes.columns)
    if missing:
        raise ValueError(f"episode table lacks column(s): {', '.join(sorted(missing))}")
    df = episodes.copy()
    df["success"] = df["success"].astype("boolean").fillna(False).astype(float)
    task = next((c for c in ("task", "env_id") if c in df.columns), None)
    df["task"] = df[task].astype(str) if task else "all"
    seeds = df["policy_seed"] if "policy_seed" in df.columns else pd.Series(pd.NA, df.index)
    df["policy_seed"] = seeds.astype(object).where(seeds.notna(), -1)
    return df


def _ratings(
    df: pd.DataFrame,
    policies: tuple[str, ...],
    prior: float,
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[Rating, ...]:
    """Bradley-Terry ratings of one scope, best first."""
    per_unit, tied, strata = _paired_wins(df, policies)
    point = bradley_terry.fit(per_unit.sum(axis=0), prior)
    distribution = np.empty((0, len(policies)))
    if n_resamples and len(per_unit):
        counts = _stratified_counts(strata, n_resamples, rng)
        distribution = bradley_terry.fit(np.einsum("rk,kij->rij", counts, per_unit), prior)
    decisive = per_unit - 0.5 * tied
    ratings = [
        Rating(
            policy,
            percentile_estimate(point[i], distribution[:, i], confidence),
            wins=float(decisive[:, i, :].sum()),
            losses=float(decisive[:, :, i].sum()),
            ties=float(tied[:, i, :].sum()),
        )
        for i, policy in enumerate(policies)
    ]
    return tuple(sorted(ratings, key=_rank_key))


def _rank_key(rating: Rating) -> tuple[float, str]:
    value = rating.rating.value
    return (math.inf if math.isnan(value) else -value, rating.policy)


def _paired_wins(
    df: pd.DataFrame, policies: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per paired unit (task, site, seed): its ``(P, P)`` wins, its ties, its stratum.

    ``wins[k, i, j]`` is 1 where ``i`` beat ``j`` in unit ``k`` (higher success, its mean over
    training seeds), 0.5 for a tie (``tied[k, i, j]``); a policy absent from a unit takes no
    part in its comparisons. The stratum is the unit's (task, site).
    """
    success = df.groupby(["task", "site", "seed", "policy"])["success"].mean()
    table = success.unstack("policy").reindex(columns=list(policies))
    values = table.to_numpy(dtype=np.float64)
    x, y = values[:, :, None], values[:, None, :]
    off_diagonal = ~np.eye(len(policies), dtype=bool)
    tied = np.isfinite(x) & np.isfinite(y) & (x == y) & off_diagonal
    wins = np.where(np.isfinite(x) & np.isfinite(y), (x > y) + 0.5 * tied, 0.0)
    strata = table.index.droplevel("seed").factorize()[0]
    return wins, tied, np.asarray(strata)


def _stratified_counts(
    strata: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``(resamples, units)``: how often each unit is drawn, with replacement within strata."""
    counts = np.zeros((n_resamples, strata.size))
    for label in np.unique(strata):
        members = np.flatnonzero(strata == label)
        drawn = rng.multinomial(
            members.size, np.full(members.size, 1.0 / members.size), n_resamples
        )
        counts[:, members] = drawn
    return counts
