"""Interval estimates for transfer evaluation: pure functions over numpy arrays.

Every interval here is computed with scipy where scipy has the method:

- `wilson_interval`: the Wilson score interval of a binomial proportion
  (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``).
- `paired_retention`: retention ``mean(target) / mean(home)`` with a *paired* percentile bootstrap
  (``scipy.stats.bootstrap(paired=True, method="percentile")``): the episodes of both sites are
  matched by seed and resampled jointly, so seed-to-seed difficulty cancels out.
- `mean_interval`: a percentile bootstrap interval of a mean.
- `iqm` and `stratified_bootstrap`: the interquartile mean (``scipy.stats.trim_mean(x, 0.25)``)
  with the stratified bootstrap of Agarwal et al., "Deep Reinforcement Learning at the Edge of
  the Statistical Precipice" (NeurIPS 2021), as implemented in the rliable library: the training
  run (seed) is the unit of replication, and runs are resampled with replacement *within* each
  task (here: each site), never across tasks. scipy has no stratified resampler, so that one
  step is numpy; the percentile interval matches rliable's default.

The percentile method is used throughout rather than BCa: BCa needs a non-degenerate jackknife,
which success indicators (all ones, all zeros) often are not, while the percentile interval of a
degenerate sample is simply the point itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval (NaN where undefined).

    Attributes:
        value: The point estimate.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
    """

    value: float
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def undefined(cls) -> Estimate:
        """An estimate whose value and interval are all NaN."""
        return cls(math.nan, math.nan, math.nan)

    def format(self, digits: int = 2) -> str:
        """Render as ``value [low, high]`` (``n/a`` for NaN, no brackets without an interval)."""
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.low) or math.isnan(self.high):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a success rate.

    Args:
        successes: Number of successes.
        n: Number of trials; 0 gives ``(nan, nan)``.
        confidence: Confidence level of the interval.

    Returns:
        ``(low, high)``.
    """
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def success_rate(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """The success rate ``successes / n`` with its Wilson interval (undefined when n is 0)."""
    if n == 0:
        return Estimate.undefined()
    return Estimate(successes / n, *wilson_interval(successes, n, confidence))


def _ratio_of_means(target: np.ndarray, home: np.ndarray, axis: int = -1) -> np.ndarray:
    """``mean(target) / mean(home)`` along ``axis``; NaN where the home mean is 0."""
    home_mean = np.mean(home, axis=axis)
    target_mean = np.mean(target, axis=axis)
    safe = np.where(home_mean > 0, home_mean, 1.0)
    return np.where(home_mean > 0, target_mean / safe, np.nan)


def paired_retention(
    target: Sequence[float] | np.ndarray,
    home: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """Retention ``mean(target) / mean(home)`` with a paired percentile bootstrap interval.

    ``target[i]`` and ``home[i]`` must be the outcomes (1 success, 0 failure) of the same seed at
    the target and the home site; resampling draws seed indices and keeps both outcomes of a
    seed together.

    Degenerate cases:
        - Home success 0: retention is undefined, every field is NaN.
        - Fewer than 2 pairs: the point estimate only (interval NaN).
        - Resamples that happen to contain no home success have no ratio; they are dropped and
          the interval is the percentile interval of the remaining resamples (a conditional
          bootstrap). With k home successes in n pairs that is a share (1 - k/n)^n of the
          resamples, at most 1/e, so most resamples always remain.

    Args:
        target: Per-seed outcomes at the target site.
        home: Per-seed outcomes at the home site, in the same seed order.
        confidence: Confidence level of the interval.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap's random generator (results are reproducible).

    Raises:
        ValueError: If the two samples differ in length.
    """
    target_arr = np.asarray(target, dtype=np.float64)
    home_arr = np.asarray(home, dtype=np.float64)
    if target_arr.shape != home_arr.shape:
        raise ValueError(f"paired samples differ in length: {target_arr.size} vs {home_arr.size}")
    if home_arr.size == 0 or home_arr.mean() == 0:
        return Estimate.undefined()
    value = float(target_arr.mean() / home_arr.mean())
    if home_arr.size < 2:
        return Estimate(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (target_arr, home_arr),
            _ratio_of_means,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        low, high = _defined_percentiles(result.bootstrap_distribution, confidence)
    return Estimate(value, low, high)


def _defined_percentiles(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval over the defined (non-NaN) resamples."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(
        distribution[~np.isnan(distribution)], [100 * alpha, 100 * (1 - alpha)]
    )
    return float(low), float(high)


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """Mean of the finite ``values`` with a percentile bootstrap interval.

    NaN values are ignored. No values give an undefined estimate; one value, or identical values,
    give a zero-width interval.
    """
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return Estimate.undefined()
    mean = float(array.mean())
    if array.size < 2 or np.all(array == array[0]):
        return Estimate(mean, mean, mean)
    result = stats.bootstrap(
        (array,),
        np.mean,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Estimate(
        mean, float(result.confidence_interval.low), float(result.confidence_interval.high)
    )


def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``)."""
    result = stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def stratified_bootstrap(
    strata: Sequence[Sequence[float] | np.ndarray],
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """A statistic of the pooled scores with a stratified percentile bootstrap interval.

    rliable's method (Agarwal et al. 2021, ``rliable.library.get_interval_estimates``): each
    stratum holds one score per training run (seed) for one task (here: one site); a resample
    draws runs with replacement within every stratum independently, pools them, and applies the
    statistic. Strata may differ in size (a seed missing at one site).

    Args:
        strata: Per-task score arrays (one score per training seed).
        statistic: Vectorised statistic over the last axis of a ``(resamples, scores)`` array;
            default: the interquartile mean.
        confidence: Confidence level of the interval.
        n_resamples: Bootstrap resamples.
        seed: Seed of the random generator.

    Returns:
        The statistic of the pooled scores with its interval; undefined when there are no scores.
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in strata]
    arrays = [a[np.isfinite(a)] for a in arrays]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return Estimate.undefined()

    def pooled_iqm(x: np.ndarray) -> np.ndarray:
        return np.asarray(iqm(x, axis=-1))

    statistic = statistic or pooled_iqm
    value = float(statistic(np.concatenate(arrays)[np.newaxis])[0])
    rng = np.random.default_rng(seed)
    resampled = [a[rng.integers(0, a.size, size=(n_resamples, a.size))] for a in arrays]
    distribution = np.asarray(statistic(np.concatenate(resampled, axis=1)), dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(distribution, [100 * alpha, 100 * (1 - alpha)])
    return Estimate(value, float(low), float(high))


def normalised_score(score: float, baseline: float, native: float) -> float:
    """Target-normalised score ``(score - baseline) / (native - baseline)``.

    0 means no better than the baseline at the target, 1 means as good as the target site's
    native policy. NaN when any input is NaN or the native policy is no better than the baseline.
    """
    if any(math.isnan(x) for x in (score, baseline, native)) or native <= baseline:
        return math.nan
    return (score - baseline) / (native - baseline)
