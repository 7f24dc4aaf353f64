"""Statistics of the transfer evaluator against independently computed reference values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from testbed.results.evaluator import transfer_matrix
from testbed.results.kpis import KPIS
from testbed.results.statistics import (
    Estimate,
    iqm,
    mean_interval,
    normalised_score,
    paired_retention,
    stratified_bootstrap,
    success_rate,
    wilson_interval,
)


def _wilson_by_formula(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval written out: centre and half-width around p-hat."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(7, 10, 0.3968, 0.8922), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (1, 2, 0.0945, 0.9055)],
    ids=["7of10", "0of10", "10of10", "1of2"],
)
def test_wilson_reference_values(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(("k", "n"), [(3, 10), (17, 20), (50, 137), (1, 1)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_the_closed_form(k: int, n: int, confidence: float) -> None:
    expected = _wilson_by_formula(k, n, confidence)
    assert wilson_interval(k, n, confidence) == pytest.approx(expected, abs=1e-9)


def test_success_rate_of_no_episodes_is_undefined() -> None:
    assert all(math.isnan(x) for x in (success_rate(0, 0).value, *wilson_interval(0, 0)))
    assert success_rate(3, 4) == Estimate(0.75, *wilson_interval(3, 4))


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm([0, 1, 2, 3, 4, 5, 6, 7, 8, 100]) == pytest.approx(4.5)  # drops 2 at each end
    assert iqm([4, 1, 3, 2]) == pytest.approx(2.5)
    assert iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm([[1, 2, 3, 100], [0, 0, 1, 1]], axis=-1) == pytest.approx([2.5, 0.5])


def _numpy_paired_bootstrap(
    target: np.ndarray, home: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    """An independent paired percentile bootstrap of mean(target) / mean(home)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(home), size=(resamples, len(home)))
    home_means, target_means = home[idx].mean(axis=1), target[idx].mean(axis=1)
    ratios = target_means[home_means > 0] / home_means[home_means > 0]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def _pattern(n_pairs: int, home_rate: float, target_rate: float, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    home = (rng.random(n_pairs) < home_rate).astype(float)
    target = home * (rng.random(n_pairs) < target_rate / home_rate)  # correlated, as seeds are
    return target, home


def test_paired_retention_matches_an_independent_bootstrap() -> None:
    target, home = _pattern(60, 0.8, 0.5)
    result = paired_retention(target, home, n_resamples=20000, seed=3)
    assert result.value == pytest.approx(target.mean() / home.mean())
    reference = _numpy_paired_bootstrap(target, home, 20000, seed=11)
    assert (result.low, result.high) == pytest.approx(reference, abs=0.03)


def test_paired_retention_pairs_seeds() -> None:
    # The target succeeds exactly where home does: retention is 1 in every resample.
    home = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1, 1], dtype=float)
    assert paired_retention(home, home) == Estimate(1.0, 1.0, 1.0)
    # Unpaired (shuffled) the same data no longer gives a zero-width interval.
    shuffled = paired_retention(home[::-1].copy(), home)
    assert shuffled.high - shuffled.low > 0.2


def test_paired_retention_interval_contains_the_estimate_and_shrinks_with_n() -> None:
    small = paired_retention(*_pattern(20, 0.9, 0.45))
    large = paired_retention(*_pattern(400, 0.9, 0.45))
    for estimate in (small, large):
        assert estimate.low <= estimate.value <= estimate.high
    assert large.high - large.low < (small.high - small.low) / 2


def test_paired_retention_is_reproducible() -> None:
    target, home = _pattern(30, 0.7, 0.4)
    assert paired_retention(target, home, seed=5) == paired_retention(target, home, seed=5)
    assert paired_retention(target, home, seed=5) != paired_retention(target, home, seed=6)


def test_paired_retention_degenerate_cases() -> None:
    undefined = paired_retention([1, 1, 0], [0, 0, 0])
    assert all(math.isnan(x) for x in (undefined.value, undefined.low, undefined.high))
    single = paired_retention([1], [1])
    assert single.value == 1.0 and math.isnan(single.low)
    zero = paired_retention([0, 0, 0, 0], [1, 1, 0, 1])
    assert zero == Estimate(0.0, 0.0, 0.0)
    # One home success in ten: about a third of the resamples have no ratio and are dropped.
    rare = paired_retention([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert rare == Estimate(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        paired_retention([1, 0], [1])


def test_mean_interval() -> None:
    assert mean_interval([3.0, 3.0, math.nan]) == Estimate(3.0, 3.0, 3.0)
    assert math.isnan(mean_interval([]).value)
    values = np.random.default_rng(0).normal(10.0, 2.0, 200)
    estimate = mean_interval(values)
    sem = stats.sem(values)
    assert estimate.low == pytest.approx(values.mean() - 1.96 * sem, abs=0.1)
    assert estimate.high == pytest.approx(values.mean() + 1.96 * sem, abs=0.1)


def test_stratified_bootstrap_with_one_stratum_is_a_plain_bootstrap() -> None:
    scores = np.array([0.2, 0.5, 0.55, 0.6, 0.65, 0.7, 0.9, 0.95])
    result = stratified_bootstrap([scores], n_resamples=20000, seed=1)
    plain = stats.bootstrap(
        (scores,),
        lambda x, axis: stats.trim_mean(x, 0.25, axis=axis),
        method="percentile",
        n_resamples=20000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert result.value == pytest.approx(stats.trim_mean(scores, 0.25))
    assert (result.low, result.high) == pytest.approx((plain.low, plain.high), abs=0.02)


def test_stratified_bootstrap_resamples_within_strata() -> None:
    # Each stratum is constant, so a within-stratum resample always pools three 0s and three
    # 1s; resampling across strata would not.
    result = stratified_bootstrap([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], lambda x: x.mean(axis=-1))
    assert result == Estimate(0.5, 0.5, 0.5)
    assert math.isnan(stratified_bootstrap([[], [math.nan]]).value)


def test_normalised_score() -> None:
    assert normalised_score(0.6, 0.2, 1.0) == pytest.approx(0.5)
    assert normalised_score(0.2, 0.2, 1.0) == 0.0
    assert math.isnan(normalised_score(0.6, 0.5, 0.5))
    assert math.isnan(normalised_score(0.6, math.nan, 0.9))


def _episodes(outcomes: dict[tuple[str, str, str, int], list[int]]) -> pd.DataFrame:
    """Rows from {(policy, home, site, training seed): [success per env seed 0..]}."""
    rows = [
        {
            "policy": p,
            "home_site": h,
            "site": s,
            "policy_seed": ps,
            "seed": seed,
            "success": bool(o),
        }
        for (p, h, s, ps), results in outcomes.items()
        for seed, o in enumerate(results)
    ]
    return pd.DataFrame(rows)


def test_iqm_across_training_seeds() -> None:
    per_seed = {0: 0.2, 1: 0.6, 2: 0.7, 3: 1.0}  # success rate of each training seed
    outcomes = {}
    for ps, rate in per_seed.items():
        outcomes[("learned", "a", "a", ps)] = [1] * round(10 * rate) + [0] * round(10 * (1 - rate))
        outcomes[("learned", "a", "b", ps)] = [1] * 5 + [0] * 5
    report = transfer_matrix(_episodes(outcomes))
    home = report.cell("learned", "a")
    assert home.training_seeds == 4
    assert home.iqm.value == pytest.approx(stats.trim_mean(list(per_seed.values()), 0.25))
    assert home.iqm.low <= home.iqm.value <= home.iqm.high
    pooled = stats.trim_mean([*per_seed.values(), 0.5, 0.5, 0.5, 0.5], 0.25)
    assert report.policy_iqm["learned"].value == pytest.approx(pooled)
    assert report.cell("learned", "b").iqm == Estimate(0.5, 0.5, 0.5)


def test_retention_pairs_training_seed_and_episode_seed() -> None:
    outcomes = {
        ("p", "a", "a", 0): [1, 1, 0, 1],
        ("p", "a", "a", 1): [1, 1, 1, 1],
        ("p", "a", "b", 0): [1, 0, 0],  # seed 3 missing at the target: dropped from the pairs
        ("p", "a", "b", 1): [0, 1, 1, 0],
    }
    cell = transfer_matrix(_episodes(outcomes)).cell("p", "b")
    # Pairs: seed0 (1,1),(0,1),(0,0); seed1 (0,1),(1,1),(1,1),(0,1) -> 3/7 over 6/7.
    assert cell.retention.value == pytest.approx(0.5)
    assert cell.success.value == pytest.approx(3 / 7)


def test_single_seed_has_no_iqm_and_home_not_run_has_no_retention() -> None:
    report = transfer_matrix(_episodes({("p", "elsewhere", "b", 0): [1, 0, 1]}))
    cell = report.cell("p", "b")
    assert math.isnan(cell.iqm.value) and math.isnan(cell.retention.value)
    assert report.policy_iqm == {}
    assert report.cell("p", "elsewhere") is None


def test_transfer_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        transfer_matrix(pd.DataFrame({"policy": ["p"]}))
    with pytest.raises(ValueError, match="baseline 'nope'"):
        transfer_matrix(_episodes({("p", "a", "a", 0): [1]}), baseline="nope")


def test_every_registered_kpi_is_aggregated_as_the_registry_says() -> None:
    df = _episodes({("p", "a", "a", 0): [1, 1, 0, 0]})
    df["ended_by"] = ["terminated", "terminated", "truncated", "fault"]
    df["throughput_parts_per_h"] = [100.0, 200.0, 60.0, math.nan]
    df["energy_per_part_j"] = [10.0, 12.0, math.nan, math.nan]
    df["latency_ms_p50"] = [1.0, 2.0, 3.0, 9.0]
    df["latency_ms_p99"] = [5.0, 6.0, 40.0, 7.0]
    df["deadline_misses"] = [0, 2, 1, 0]
    df["invalid_actions"] = [0, 0, 0, 3]
    cell = transfer_matrix(df).cell("p", "a")
    assert cell is not None and set(cell.kpis) == set(KPIS)
    assert cell.kpi("throughput_parts_per_h") == pytest.approx(120.0)  # the fault left out
    assert cell.kpi("energy_per_part_j").value == pytest.approx(11.0)
    assert cell.kpi("latency_p50_ms") == pytest.approx(2.5)  # median of the p50s
    assert cell.kpi("latency_p99_ms") == 40.0  # the worst p99
    assert (cell.kpi("deadline_misses"), cell.kpi("invalid_actions")) == (3, 3)
    assert cell.kpi("faulted_episodes") == 1
    assert math.isnan(cell.kpi("cycle_time_median_s"))  # no column: n/a, not an error
