"""Does one site predict another? Rank agreement of policy success rates between sites.

For every ordered pair of sites (A predicts B), over the policies evaluated at both:

- MMRV, the mean maximum rank violation of SimplerEnv (Li et al., "Evaluating Real-World Robot
  Manipulation Policies in Simulation", 2024, ``simpler_env/utils/metrics.py``): with ``a`` the
  success rates at the predicting site and ``b`` those at the reference site,
  ``MMRV = mean_i max_j |b_i - b_j| * [(a_i > a_j) != (b_i > b_j)]``. It is in success-rate
  units (0: A orders every pair as B does; lower is better) and asymmetric: B is the reference
  whose gaps are counted. Ties follow that definition exactly: two policies tied at A but not
  at B count as a violation for the one B rates higher; tied at both sites, no violation.
- Pearson r and Kendall tau-b of the two vectors of success rates (``scipy.stats.pearsonr`` and
  ``scipy.stats.kendalltau`` give the same values; both are symmetric in A and B).

Intervals are percentile bootstrap intervals over episodes: every (policy, site) cell's episodes
are resampled with replacement, independently of the other cells, and each statistic is
recomputed on the resampled success rates. A cell of ``n`` episodes with ``k`` successes
resamples to ``Binomial(n, k / n) / n``, which is what drawing its 0/1 outcomes with
replacement gives, so that is how it is drawn. Every pair of sites uses the same resamples of a
cell. Resamples in which r or tau is undefined (all rates equal at a site) are left out of that
interval.

Undefined values are NaN in the data and said in words (`PairPredictivity.note`), never printed
as numbers: with fewer than two common policies nothing can be ranked, and r and tau need the
rates to differ at both sites (a site where every policy fails has no ranking of its own).

The best predictor of a reference site is the other site with the lowest MMRV point estimate,
ties broken by the higher Kendall tau, then the higher Pearson r; sites still tied are all named.
A reference site where every policy has the same success rate (all fail, say) has no ranking to
predict, so no best predictor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from testbed.results.statistics import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate


@dataclass(frozen=True)
class PairPredictivity:
    """How well the ranking at ``predictor`` predicts the ranking at ``reference``.

    Attributes:
        predictor: Site A, whose ranking is the prediction.
        reference: Site B, whose ranking is the truth (MMRV counts its gaps).
        policies: The policies evaluated at both sites, in the order of the rate vectors.
        mmrv: Mean maximum rank violation with its bootstrap interval (NaN without a ranking).
        pearson: Pearson r of the success rates (NaN where undefined).
        kendall: Kendall tau-b of the success rates (NaN where undefined).
        note: Why a value is undefined, in words; empty when all are defined.
        flat_reference: Why the reference has no ranking to predict (the policies' rates
            there are all equal: MMRV is 0 whatever the predictor says); empty otherwise.
    """

    predictor: str
    reference: str
    policies: tuple[str, ...]
    mmrv: Estimate
    pearson: Estimate
    kendall: Estimate
    note: str = ""
    flat_reference: str = ""

    @property
    def reference_ranked(self) -> bool:
        """False where the reference has no ranking to predict (see ``flat_reference``)."""
        return not self.flat_reference


@dataclass(frozen=True)
class Predictivity:
    """Predictivity of every ordered pair of sites of a campaign.

    Attributes:
        sites: The sites, in order.
        pairs: ``(predictor, reference)`` -> its `PairPredictivity`, for every ordered pair of
            distinct sites.
        best: Reference site -> the sites that predict it best; absent when no other site
            ranks two or more of its policies, or it has no ranking of its own (all its
            policies' rates equal).
        confidence: Confidence level of every interval.
        n_resamples: Bootstrap resamples.
    """

    sites: tuple[str, ...]
    pairs: dict[tuple[str, str], PairPredictivity]
    best: dict[str, tuple[str, ...]] = field(default_factory=dict)
    confidence: float = 0.95
    n_resamples: int = DEFAULT_RESAMPLES

    def pair(self, predictor: str, reference: str) -> PairPredictivity | None:
        """The pair ``predictor`` -> ``reference`` (None for a site paired with itself)."""
        return self.pairs.get((predictor, reference))

    def best_sentence(self, reference: str) -> str:
        """Which site best predicts ``reference``, as one sentence."""
        best = self.best.get(reference, ())
        if not best:
            return f"{reference}: {self._unpredicted(reference)}."
        pair = self.pairs[(best[0], reference)]
        sites = " and ".join(best)
        said = (
            f"{reference} is best predicted by {sites} (MMRV {pair.mmrv.format()}, "
            f"Kendall tau {pair.kendall.format()}, Pearson r {pair.pearson.format()}"
        )
        return f"{said}; {pair.note})." if pair.note else f"{said})."

    def _unpredicted(self, reference: str) -> str:
        """Why no site predicts ``reference``."""
        pairs = [p for (_, b), p in self.pairs.items() if b == reference]
        if not pairs:
            return "no other site was evaluated"
        flat = [p.flat_reference for p in pairs if len(p.policies) >= 2 and p.flat_reference]
        if flat:
            return f"{flat[0]}, so it has no ranking for another site to predict"
        return "no other site ranks two or more of the policies evaluated here"

    def to_frame(self) -> pd.DataFrame:
        """One row per ordered pair; an estimate ``x`` gives ``x``, ``x_low``, ``x_high``.

        Undefined values are NaN (empty in a CSV); ``note`` says why.
        """
        rows = []
        for (predictor, reference), pair in self.pairs.items():
            row: dict[str, object] = {
                "predictor": predictor,
                "reference": reference,
                "policies": len(pair.policies),
                "best_predictor": predictor in self.best.get(reference, ()),
            }
            for name in ("mmrv", "pearson", "kendall"):
                estimate: Estimate = getattr(pair, name)
                row.update(
                    {
                        name: estimate.value,
                        f"{name}_low": estimate.low,
                        f"{name}_high": estimate.high,
                    }
                )
            row["note"] = pair.note
            rows.append(row)
        return pd.DataFrame(rows)


def mmrv(predictor: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """SimplerEnv's mean maximum rank violation over the last axis (vectorised over the rest).

    ``predictor`` and ``reference`` hold the success rates of the same policies at the two
    sites. NaN with fewer than two policies.
    """
    a, b = np.asarray(predictor, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape[-1] < 2:
        return np.full(a.shape[:-1], np.nan)
    wrong = (a[..., :, None] > a[..., None, :]) != (b[..., :, None] > b[..., None, :])
    gaps = np.abs(b[..., :, None] - b[..., None, :]) * wrong
    return np.asarray(gaps.max(axis=-1).mean(axis=-1))


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r over the last axis; NaN where either side is constant or has < 2 values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    sxx, syy = (dx * dx).sum(axis=-1), (dy * dy).sum(axis=-1)
    defined = (sxx > _EPS) & (syy > _EPS)
    denominator = np.sqrt(np.where(defined, sxx * syy, 1.0))
    return np.where(defined, np.clip((dx * dy).sum(axis=-1) / denominator, -1.0, 1.0), np.nan)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b over the last axis (ties corrected); NaN where either side is constant.

    ``tau_b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y))`` over the
    ``n0`` pairs of policies, as ``scipy.stats.kendalltau`` computes it.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1], np.nan)
    i, j = np.triu_indices(n, k=1)
    sx, sy = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
    untied_x, untied_y = (sx != 0).sum(axis=-1), (sy != 0).sum(axis=-1)
    defined = (untied_x > 0) & (untied_y > 0)
    denominator = np.sqrt(np.where(defined, untied_x * untied_y, 1))
    return np.where(defined, (sx * sy).sum(axis=-1) / denominator, np.nan)


_EPS = 1e-12


def site_predictivity(
    episodes: pd.DataFrame,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Predictivity:
    """Predictivity of every ordered pair of sites from the episode table.

    Args:
        episodes: Rows as from `testbed.results.episode_table.load_episodes` (needs ``policy``,
            ``site`` and ``success``; a missing success is a failure).
        confidence: Confidence level of the intervals.
        n_resamples: Bootstrap resamples (0: point estimates only).
        seed: Seed of the bootstrap's random generator (results are reproducible).

    Raises:
        ValueError: If the table lacks a required column.
    """
    missing = {"policy", "site", "success"} - set(episodes.columns)
    if missing:
        raise ValueError(f"episode table lacks column(s): {', '.join(sorted(missing))}")
    success = episodes["success"].astype("boolean").fillna(False).astype(bool)
    counts = success.groupby([episodes["policy"], episodes["site"]]).agg(["sum", "size"])
    sites = tuple(sorted(episodes["site"].unique()))
    rng = np.random.default_rng(seed)
    rates: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    for (policy, site), (k, n) in counts.iterrows():
        drawn = rng.binomial(int(n), k / n, size=n_resamples) / n
        rates[(str(policy), str(site))] = (k / n, drawn)
    pairs = {(a, b): _pair(a, b, rates, confidence) for a in sites for b in sites if a != b}
    return Predictivity(sites, pairs, _best(sites, pairs), confidence, n_resamples)


def _pair(
    a: str, b: str, rates: dict[tuple[str, str], tuple[float, np.ndarray]], confidence: float
) -> PairPredictivity:
    policies = tuple(sorted(p for p, s in rates if s == a and (p, b) in rates))
    if len(policies) < 2:
        said = "no policy was" if not policies else f"only {policies[0]} was"
        note = f"{said} evaluated at both sites: no ranking to compare"
        undefined = Estimate.undefined()
        return PairPredictivity(a, b, policies, undefined, undefined, undefined, note)
    point_a = np.array([rates[(p, a)][0] for p in policies])
    point_b = np.array([rates[(p, b)][0] for p in policies])
    drawn_a = np.stack([rates[(p, a)][1] for p in policies], axis=-1)
    drawn_b = np.stack([rates[(p, b)][1] for p in policies], axis=-1)
    m, r, tau = (
        percentile_estimate(function(point_a, point_b), function(drawn_a, drawn_b), confidence)
        for function in (mmrv, pearson, kendall_tau_b)
    )
    flat = [_flat(site, rate) for site, rate in ((a, point_a), (b, point_b))]
    note = "; ".join(reason for reason in flat if reason)
    if note:
        note += ": r and tau undefined"
    if flat[1]:
        note += f"; {b} has nothing to rank, so its MMRV is 0 whatever {a} says"
    return PairPredictivity(a, b, policies, m, r, tau, note, flat_reference=flat[1])


def _flat(site: str, rates: np.ndarray) -> str:
    """Why ``site`` has no ranking of its own (empty if its rates differ)."""
    if np.ptp(rates) > _EPS:
        return ""
    if rates[0] == 0.0:
        return f"every policy fails at {site}"
    if rates[0] == 1.0:
        return f"every policy succeeds at {site}"
    return f"every policy has success rate {rates[0]:.2f} at {site}"


def percentile_estimate(
    value: float | np.ndarray, distribution: np.ndarray, confidence: float
) -> Estimate:
    """``value`` with the percentile interval of the finite resamples in ``distribution``.

    A NaN value is undefined (interval too); no finite resample leaves the point alone.
    """
    point = float(value)
    if math.isnan(point):
        return Estimate.undefined()
    defined = distribution[np.isfinite(distribution)]
    if defined.size == 0:
        return Estimate(point)
    alpha = 100 * (1.0 - confidence) / 2.0
    low, high = np.percentile(defined, [alpha, 100 - alpha])
    return Estimate(point, float(low), float(high))


def _best(
    sites: Iterable[str], pairs: dict[tuple[str, str], PairPredictivity]
) -> dict[str, tuple[str, ...]]:
    best: dict[str, tuple[str, ...]] = {}
    for reference in sites:
        ranked = [
            (_key(pair), pair.predictor)
            for (_, b), pair in pairs.items()
            if b == reference and pair.reference_ranked and not math.isnan(pair.mmrv.value)
        ]
        if ranked:
            top = min(key for key, _ in ranked)
            best[reference] = tuple(site for key, site in ranked if key == top)
    return best


def _key(pair: PairPredictivity) -> tuple[float, float, float]:
    """Sort key of a predictor: MMRV up, then tau down, then r down (undefined last)."""

    def down(value: float) -> float:
        return math.inf if math.isnan(value) else -round(value, 12)

    return round(pair.mmrv.value, 12), down(pair.kendall.value), down(pair.pearson.value)
