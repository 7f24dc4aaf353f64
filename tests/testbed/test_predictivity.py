"""Site predictivity (MMRV, Pearson r, Kendall tau) on hand-made data against reference values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from testbed.results.predictivity import kendall_tau_b, mmrv, pearson, site_predictivity


def _mmrv_by_definition(sim: list[float], real: list[float]) -> float:
    """SimplerEnv's loop: per policy the largest real gap among the pairs sim orders wrongly."""
    worst = []
    for i in range(len(sim)):
        gaps = [
            abs(real[i] - real[j])
            for j in range(len(sim))
            if (sim[i] > sim[j]) != (real[i] > real[j])
        ]
        worst.append(max(gaps, default=0.0))
    return sum(worst) / len(worst)


def _episodes(rates: dict[tuple[str, str], tuple[int, int]]) -> pd.DataFrame:
    """(policy, site) -> (successes, episodes): success on the first seeds."""
    rows = [
        {"policy": policy, "site": site, "seed": seed, "success": seed < k}
        for (policy, site), (k, n) in rates.items()
        for seed in range(n)
    ]
    return pd.DataFrame(rows)


def test_mmrv_by_hand() -> None:
    # A orders p1 > p2, B orders p2 > p1 (gap 0.1 at B): p1 and p2 each violate by 0.1.
    a, b = [0.9, 0.5, 0.1], [0.5, 0.6, 0.2]
    assert mmrv(np.array(a), np.array(b)) == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    # Reversed, B's order is the prediction and A's gap (0.4) counts: asymmetric.
    assert mmrv(np.array(b), np.array(a)) == pytest.approx((0.4 + 0.4 + 0.0) / 3)
    assert mmrv(np.array(a), np.array(a)) == 0.0


def test_mmrv_ties_follow_simplerenv() -> None:
    # Tied at A, ordered at B: a violation for the policy B rates higher only.
    a, b = [0.5, 0.5, 0.1], [0.8, 0.4, 0.1]
    assert mmrv(np.array(a), np.array(b)) == pytest.approx(0.4 / 3)
    # Tied at both sites: no violation.
    assert mmrv(np.array([0.5, 0.5]), np.array([0.3, 0.3])) == 0.0


def test_mmrv_matches_the_definition_on_random_rates() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        size = int(rng.integers(2, 7))
        a, b = rng.integers(0, 5, size) / 4, rng.integers(0, 5, size) / 4  # many ties
        assert mmrv(a, b) == pytest.approx(_mmrv_by_definition(list(a), list(b)))
    batch_a, batch_b = rng.random((4, 5)), rng.random((4, 5))
    expected = [
        _mmrv_by_definition(list(x), list(y)) for x, y in zip(batch_a, batch_b, strict=True)
    ]
    assert mmrv(batch_a, batch_b) == pytest.approx(expected)


def test_pearson_and_kendall_match_scipy() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        size = int(rng.integers(2, 8))
        x, y = rng.integers(0, 4, size) / 3, rng.integers(0, 4, size) / 3
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(pearson(x, y)) and math.isnan(kendall_tau_b(x, y))
            continue
        assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_kendall_with_ties_by_hand() -> None:
    # Pairs (1,2): x tied; (1,3), (2,3): concordant. tau_b = 2 / sqrt(2 * 3).
    assert kendall_tau_b(np.array([0.5, 0.5, 0.0]), np.array([0.9, 0.6, 0.1])) == pytest.approx(
        2 / math.sqrt(6)
    )


def test_pairs_with_their_values_and_the_best_predictor() -> None:
    rates = {("p1", "a"): (9, 10), ("p2", "a"): (5, 10), ("p3", "a"): (1, 10)}
    rates |= {("p1", "b"): (5, 10), ("p2", "b"): (6, 10), ("p3", "b"): (2, 10)}
    rates |= {("p1", "c"): (8, 10), ("p2", "c"): (4, 10), ("p3", "c"): (0, 10)}
    result = site_predictivity(_episodes(rates), n_resamples=500)
    ab = result.pair("a", "b")
    assert ab is not None and ab.policies == ("p1", "p2", "p3") and ab.note == ""
    assert ab.mmrv.value == pytest.approx(_mmrv_by_definition([0.9, 0.5, 0.1], [0.5, 0.6, 0.2]))
    assert ab.pearson.value == pytest.approx(stats.pearsonr([0.9, 0.5, 0.1], [0.5, 0.6, 0.2])[0])
    assert ab.kendall.value == pytest.approx(1 / 3)
    for estimate in (ab.mmrv, ab.pearson, ab.kendall):
        assert estimate.low <= estimate.value <= estimate.high
    # a and c order the policies alike (MMRV 0, tau 1); b swaps p1 and p2.
    assert result.best["c"] == ("a",) and result.best["a"] == ("c",)
    assert result.best["b"] == ("a", "c")  # tied on MMRV, tau and r: both named
    assert "c is best predicted by a (MMRV 0.00" in result.best_sentence("c")
    assert result.pair("a", "a") is None
    frame = result.to_frame()
    assert len(frame) == 6 and set(frame.columns) >= {"mmrv_low", "kendall_high", "note"}


def test_bootstrap_is_reproducible_and_degenerate_where_nothing_varies() -> None:
    rates = {("p1", "a"): (10, 10), ("p2", "a"): (0, 10)}
    rates |= {("p1", "b"): (10, 10), ("p2", "b"): (0, 10)}
    episodes = _episodes(rates)
    first = site_predictivity(episodes, n_resamples=200, seed=7)
    assert first == site_predictivity(episodes, n_resamples=200, seed=7)
    ab = first.pair("a", "b")
    assert ab is not None
    assert (ab.mmrv.low, ab.mmrv.value, ab.mmrv.high) == (0.0, 0.0, 0.0)
    assert (ab.kendall.low, ab.kendall.high) == (1.0, 1.0)


def test_interval_matches_resampling_the_episodes_themselves() -> None:
    """The binomial draw of a cell's rate is its episodes resampled: compare with the latter."""
    policies = ("p1", "p2", "p3", "p4", "p5")
    rates = {(p, "a"): (k, 40) for p, k in zip(policies, (30, 22, 17, 9, 3), strict=True)}
    rates |= {(p, "b"): (k, 40) for p, k in zip(policies, (21, 24, 10, 12, 2), strict=True)}
    result = site_predictivity(_episodes(rates), n_resamples=4000, seed=1)
    rng = np.random.default_rng(2)
    drawn = {}
    for key, (k, n) in rates.items():
        outcomes = np.arange(n) < k
        drawn[key] = outcomes[rng.integers(0, n, size=(4000, n))].mean(axis=1)
    a = np.stack([drawn[(p, "a")] for p in policies], axis=-1)
    b = np.stack([drawn[(p, "b")] for p in policies], axis=-1)
    pair = result.pair("a", "b")
    assert pair is not None
    for estimate, values in (
        (pair.mmrv, mmrv(a, b)),
        (pair.pearson, pearson(a, b)),
        (pair.kendall, kendall_tau_b(a, b)),
    ):
        low, high = np.percentile(values[np.isfinite(values)], [2.5, 97.5])
        assert (estimate.low, estimate.high) == pytest.approx((low, high), abs=0.05)


def test_a_site_where_every_policy_fails() -> None:
    rates = {("p1", "a"): (8, 10), ("p2", "a"): (3, 10)}
    rates |= {("p1", "dead"): (0, 10), ("p2", "dead"): (0, 10)}
    result = site_predictivity(_episodes(rates), n_resamples=200)
    into_dead, from_dead = result.pair("a", "dead"), result.pair("dead", "a")
    assert into_dead is not None and from_dead is not None
    for pair in (into_dead, from_dead):
        assert math.isnan(pair.pearson.value) and math.isnan(pair.kendall.value)
        assert "every policy fails at dead: r and tau undefined" in pair.note
        assert pair.pearson.format() == "n/a"
    # Predicting a from a flat ranking: p1 ties p2 at dead, a ranks p1 higher by 0.5.
    assert from_dead.mmrv.value == pytest.approx(0.5 / 2)
    assert into_dead.mmrv.value == 0.0 and not into_dead.reference_ranked
    assert "dead" not in result.best and result.best["a"] == ("dead",)
    assert result.best_sentence("a").endswith(
        "Pearson r n/a; every policy fails at dead: r and tau undefined)."
    )
    sentence = result.best_sentence("dead")
    assert "every policy fails at dead" in sentence and "no ranking" in sentence
    assert "nan" not in sentence.lower()
    assert result.to_frame()["pearson"].isna().all()


def test_a_single_policy_has_no_ranking() -> None:
    rates = {("p1", "a"): (8, 10), ("p1", "b"): (3, 10), ("p2", "a"): (1, 10)}
    result = site_predictivity(_episodes(rates), n_resamples=100)
    pair = result.pair("a", "b")
    assert pair is not None and pair.policies == ("p1",)
    assert "only p1 was evaluated at both sites: no ranking to compare" in pair.note
    assert all(math.isnan(e.value) for e in (pair.mmrv, pair.pearson, pair.kendall))
    assert result.best == {}
    assert "no other site ranks two or more" in result.best_sentence("b")
    assert "nan" not in result.best_sentence("a").lower()


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="success"):
        site_predictivity(pd.DataFrame({"policy": ["p"], "site": ["a"]}))
