"""Leaderboard: Bradley-Terry from paired episodes, probability of improvement, profiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import expit

from testbed.results import bradley_terry
from testbed.results.leaderboard import leaderboard
from testbed.results.run_comparisons import (
    EPISODE_UNIT,
    SEED_UNIT,
    probability_of_improvement,
    run_scores,
)


def _wins(pairs: dict[tuple[int, int], float], n: int) -> np.ndarray:
    wins = np.zeros((n, n))
    for (i, j), count in pairs.items():
        wins[i, j] = count
    return wins


def test_two_policies_have_the_closed_form() -> None:
    theta = bradley_terry.fit(_wins({(0, 1): 3, (1, 0): 1}, 2), prior=0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3))
    assert theta.sum() == pytest.approx(0)
    # Two ties: half a win each, log((3 + 1) / (1 + 1)); the prior adds half a win more each.
    assert np.diff(bradley_terry.fit(_wins({(0, 1): 4, (1, 0): 2}, 2), prior=0)) == pytest.approx(
        -math.log(2)
    )
    with_prior = bradley_terry.fit(_wins({(0, 1): 3, (1, 0): 1}, 2), prior=1)
    assert with_prior[0] - with_prior[1] == pytest.approx(math.log(3.5 / 1.5))


def test_expected_win_counts_recover_the_ratings() -> None:
    truth = np.array([1.0, 0.2, -0.4, -0.8])
    games = 20.0
    wins = games * expit(truth[:, None] - truth[None, :])
    np.fill_diagonal(wins, 0)
    assert bradley_terry.fit(wins, prior=0) == pytest.approx(truth - truth.mean(), abs=1e-7)


def test_fit_is_the_maximum_likelihood_of_scipy() -> None:
    rng = np.random.default_rng(2)
    wins = rng.integers(0, 6, (5, 5)).astype(float)
    np.fill_diagonal(wins, 0)

    def negative_log_likelihood(free: np.ndarray) -> float:
        theta = np.append(free, 0.0)
        return -float((wins * np.log(expit(theta[:, None] - theta[None, :]))).sum())

    found = optimize.minimize(negative_log_likelihood, np.zeros(4), method="BFGS", tol=1e-12).x
    expected = np.append(found, 0.0)
    assert bradley_terry.fit(wins, prior=0) == pytest.approx(expected - expected.mean(), abs=1e-5)


def test_fit_is_vectorised_and_leaves_a_policy_with_no_game_unrated() -> None:
    batch = np.stack([_wins({(0, 1): 3, (1, 0): 1}, 3), _wins({(0, 1): 1, (1, 0): 1}, 3)])
    theta = bradley_terry.fit(batch, prior=0)
    assert theta[0, 0] - theta[0, 1] == pytest.approx(math.log(3))
    assert theta[1, :2] == pytest.approx([0, 0])
    assert np.isnan(theta[:, 2]).all()


def _episodes(outcomes: dict[tuple[str, str], str], policy_seed: int | None = None) -> list[dict]:
    """(policy, site) -> one character per seed: 1 success, 0 failure."""
    return [
        {"policy": p, "site": s, "seed": seed, "success": c == "1", "policy_seed": policy_seed}
        for (p, s), text in outcomes.items()
        for seed, c in enumerate(text)
    ]


def test_paired_episodes_with_a_known_answer() -> None:
    # Seeds pair up: good wins 3 (seeds 0-2), loses 1 (seed 3), ties 2 (both fail 4, both win 5).
    table = pd.DataFrame(_episodes({("good", "a"): "111001", ("bad", "a"): "000101"}))
    board = leaderboard(table, prior=0, n_resamples=300)
    good, bad = board.ratings["overall"]
    assert (good.policy, good.wins, good.losses, good.ties) == ("good", 3, 1, 2)
    assert (bad.wins, bad.losses, bad.ties) == (1, 3, 2)
    assert good.rating.value - bad.rating.value == pytest.approx(math.log(4 / 2))
    assert good.rating.low <= good.rating.value <= good.rating.high
    assert list(board.ratings) == ["overall"] and board.unit == EPISODE_UNIT


def test_unpaired_episodes_are_not_compared_and_tasks_get_their_own_board() -> None:
    rows = _episodes({("x", "a"): "11", ("y", "a"): "00", ("y", "b"): "11"})
    rows += [{**r, "seed": r["seed"] + 10} for r in _episodes({("x", "b"): "00"})]  # no pairs
    table = pd.DataFrame(rows).assign(env_id="Testbed/T-v0")
    table = pd.concat([table, table.assign(env_id="Testbed/U-v0", success=~table["success"])])
    board = leaderboard(table, prior=1, n_resamples=100)
    assert list(board.ratings) == ["overall", "Testbed/T-v0", "Testbed/U-v0"]
    x_t = next(r for r in board.ratings["Testbed/T-v0"] if r.policy == "x")
    assert (x_t.wins, x_t.losses, x_t.ties) == (2, 0, 0)
    assert x_t.rating.value == pytest.approx(math.log(2.5 / 0.5) / 2)  # prior: 1 virtual tie
    x_all = next(r for r in board.ratings["overall"] if r.policy == "x")
    assert (x_all.wins, x_all.losses) == (2, 2) and x_all.rating.value == pytest.approx(0)


def test_a_site_where_every_policy_fails_is_all_ties() -> None:
    table = pd.DataFrame(_episodes({("p", "dead"): "0000", ("q", "dead"): "0000"}))
    board = leaderboard(table, n_resamples=100)
    for rating in board.ratings["overall"]:
        assert (rating.wins, rating.losses, rating.ties) == (0, 0, 4)
        assert rating.rating.value == pytest.approx(0)
    assert board.improvement[("p", "q")].value == 0.5
    assert [e.value for e in board.profiles["p"]] == [0, 0, 0, 0]


def test_a_single_policy_is_unrated() -> None:
    board = leaderboard(pd.DataFrame(_episodes({("solo", "a"): "101"})), n_resamples=50)
    (solo,) = board.ratings["overall"]
    assert math.isnan(solo.rating.value) and solo.rating.format() == "n/a"
    assert solo.comparisons == 0 and board.improvement == {}
    frame = board.to_frame()
    assert frame.loc[frame["statistic"] == "bradley_terry", "rank"].isna().all()


def test_probability_of_improvement_is_mann_whitney() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 4, 7) / 3, rng.integers(0, 4, 5) / 3
    u = stats.mannwhitneyu(x, y, alternative="greater").statistic
    assert probability_of_improvement(x, y) == pytest.approx(u / (7 * 5))


def test_improvement_and_profiles_from_value_shares_match_the_samples() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.integers(-2, 3, 9) / 2, rng.integers(-2, 3, 6) / 2  # many ties
    table = pd.DataFrame(
        [{"policy": "x", "success": v} for v in x] + [{"policy": "y", "success": v} for v in y]
    ).assign(task="t", site="s", policy_seed=-1)
    runs = run_scores(table, 400, np.random.default_rng(0))
    estimate = runs.improvement("x", "y")
    assert estimate is not None and runs.unit == EPISODE_UNIT
    assert estimate.value == pytest.approx(probability_of_improvement(x, y))
    assert estimate.low <= estimate.value <= estimate.high
    assert runs.profile("y", 0.25).value == pytest.approx(np.mean(y > 0.25))
    assert runs.improvement("x", "nobody") is None


def _seeded(rates: dict[str, list[list[float]]]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """policy -> per site, per training seed success rate over 4 episodes; and rliable's scores."""
    rows, scores = [], {}
    for policy, per_site in rates.items():
        for site_index, per_seed in enumerate(per_site):
            for policy_seed, rate in enumerate(per_seed):
                rows += [
                    {
                        "policy": policy,
                        "site": f"s{site_index}",
                        "seed": episode,
                        "policy_seed": policy_seed,
                        "success": episode < round(rate * 4),
                    }
                    for episode in range(4)
                ]
        scores[policy] = np.array(per_site).T  # (runs, tasks)
    return pd.DataFrame(rows), scores


def test_improvement_and_profiles_match_rliable() -> None:
    metrics = pytest.importorskip("rliable.metrics")
    table, scores = _seeded(
        {
            "x": [[1.0, 0.75, 0.5], [0.25, 0.5, 0.5]],
            "y": [[0.5, 0.75, 0.25], [0.5, 0.0, 0.25]],
        }
    )
    board = leaderboard(table, n_resamples=500)
    assert board.unit == SEED_UNIT
    expected = metrics.probability_of_improvement(scores["x"], scores["y"])
    assert board.improvement[("x", "y")].value == pytest.approx(expected)
    assert board.improvement[("y", "x")].value == pytest.approx(1 - expected)
    low, high = board.improvement[("x", "y")].low, board.improvement[("x", "y")].high
    assert low <= expected <= high
    # rliable.library.run_score_deviation: np.mean(scores > tau) over runs x tasks.
    # (rliable.library itself imports arch, which does not import under pandas 3.)
    for tau, estimate in zip(board.taus, board.profiles["x"], strict=True):
        assert estimate.value == pytest.approx(np.mean(scores["x"] > tau))
