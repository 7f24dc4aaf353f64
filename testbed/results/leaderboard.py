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

rliable (Agarwal et al., NeurIPS 2021), with each (task, site) as one of rliable's tasks and
one score per run, a run being a training seed (its success rate there) when every policy has
two or more training seeds, otherwise an episode (its 0/1 success):

- probability of improvement ``P(X > Y)``: per task the Mann-Whitney ``U / (N M)`` of X's runs
  against Y's (``rliable.metrics.probability_of_improvement``: ties count a half), averaged
  over the tasks both ran; interval by rliable's stratified independent bootstrap (the runs of
  X and of Y resampled within each task, separately).
- performance profile: the fraction of runs with a score above ``tau``
  (``rliable.library.run_score_deviation``), averaged over the tasks the policy ran, with a
  stratified bootstrap interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from testbed.results import bradley_terry
from testbed.results.predictivity import percentile_estimate
from testbed.results.statistics import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate

OVERALL = "overall"
TAUS = (0.0, 0.25, 0.5, 0.75)
SEED_UNIT, EPISODE_UNIT = "training seed", "episode"


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
    """

    ratings: dict[str, tuple[Rating, ...]]
    improvement: dict[tuple[str, str], Estimate]
    profiles: dict[str, tuple[Estimate, ...]]
    taus: tuple[float, ...] = TAUS
    unit: str = EPISODE_UNIT
    tasks: tuple[str, ...] = ("all",)
    confidence: float = 0.95
    prior: float = 1.0
    policies: tuple[str, ...] = field(default=())

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
        episodes: Rows as from `testbed.results.evaluator.load_episodes` (needs ``policy``,
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
    unit, runs = _runs(df)
    improvement = {
        (x, y): _improvement(runs[x], runs[y], confidence, n_resamples, rng)
        for x in policies
        for y in policies
        if x != y and set(runs[x]) & set(runs[y])
    }
    profiles = {
        p: tuple(_profile(runs[p], tau, confidence, n_resamples, rng) for tau in taus)
        for p in policies
    }
    return Leaderboard(
        ratings, improvement, profiles, taus, unit, tasks, confidence, prior, policies
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


def _runs(df: pd.DataFrame) -> tuple[str, dict[str, dict[tuple[str, str], np.ndarray]]]:
    """What a run is, and each policy's run scores per (task, site)."""
    per_policy_seeds = df.groupby(["policy", "task", "site"])["policy_seed"].nunique()
    unit = SEED_UNIT if per_policy_seeds.min() >= 2 else EPISODE_UNIT
    runs: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for (policy, task, site), group in df.groupby(["policy", "task", "site"]):
        scores = (
            group.groupby("policy_seed")["success"].mean()
            if unit == SEED_UNIT
            else group["success"]
        )
        runs.setdefault(str(policy), {})[(str(task), str(site))] = scores.to_numpy(np.float64)
    return unit, runs


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mann-Whitney ``U / (N M)`` of ``x`` against ``y`` over the last axis (a tie: a half)."""
    xs, ys = np.asarray(x, np.float64)[..., :, None], np.asarray(y, np.float64)[..., None, :]
    return np.asarray(((xs > ys) + 0.5 * (xs == ys)).mean(axis=(-2, -1)))


def _improvement(
    x: dict[tuple[str, str], np.ndarray],
    y: dict[tuple[str, str], np.ndarray],
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> Estimate:
    shared = sorted(set(x) & set(y))
    point = float(np.mean([probability_of_improvement(x[t], y[t]) for t in shared]))
    if not n_resamples:
        return Estimate(point)
    per_task = [
        probability_of_improvement(
            _resampled(x[t], n_resamples, rng), _resampled(y[t], n_resamples, rng)
        )
        for t in shared
    ]
    return percentile_estimate(point, np.mean(per_task, axis=0), confidence)


def _profile(
    runs: dict[tuple[str, str], np.ndarray],
    tau: float,
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> Estimate:
    scores = list(runs.values())
    point = float(np.mean([np.mean(s > tau) for s in scores]))
    if not n_resamples:
        return Estimate(point)
    drawn = [np.mean(_resampled(s, n_resamples, rng) > tau, axis=-1) for s in scores]
    return percentile_estimate(point, np.mean(drawn, axis=0), confidence)


def _resampled(scores: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    return scores[rng.integers(0, scores.size, size=(n_resamples, scores.size))]
