"""The report's ranking sections: "Does one site predict another?" and "Leaderboard".

`ranking_blocks` evaluates the episode table with `testbed.results.predictivity` and
`testbed.results.leaderboard`, writes ``predictivity.csv``, ``leaderboard.csv`` and the
heatmap ``predictivity.png`` beside the report (atomically), and returns the blocks that show
them. Every undefined value is written ``n/a`` with its reason, never as a number.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from testbed.atomic import atomic_write_text
from testbed.results.attribution import Attribution, attributed, policy_attribution
from testbed.results.leaderboard import OVERALL, Leaderboard, leaderboard
from testbed.results.predictivity import Predictivity, site_predictivity
from testbed.results.ranking_plots import predictivity_heatmap
from testbed.results.report_blocks import Block
from testbed.results.run_comparisons import SEED_UNIT
from testbed.results.statistics import DEFAULT_RESAMPLES, Estimate

PREDICTIVITY_CSV, LEADERBOARD_CSV, HEATMAP = (
    "predictivity.csv",
    "leaderboard.csv",
    "predictivity.png",
)


def ranking_blocks(episodes: pd.DataFrame, out_dir: Path) -> list[Block]:
    """Compute both sections, write their CSVs and figure into ``out_dir``, return the blocks."""
    out = Path(out_dir)
    result = site_predictivity(episodes)
    board = leaderboard(episodes)
    atomic_write_text(out / PREDICTIVITY_CSV, result.to_frame().to_csv(index=False))
    teams = policy_attribution(episodes)
    board_rows = attributed(board.to_frame(), teams)
    atomic_write_text(out / LEADERBOARD_CSV, board_rows.to_csv(index=False))
    if len(result.sites) > 1:
        predictivity_heatmap(result, out / HEATMAP)
    return [*_predictivity(result), *_leaderboard(board, teams)]


def _predictivity(result: Predictivity) -> list[Block]:
    pct = f"{result.confidence:.0%}"
    explain = (
        "For every ordered pair of sites, over the policies evaluated at both: does the "
        "ranking of their success rates at the predicting site match the ranking at the "
        "reference site? MMRV (SimplerEnv's mean maximum rank violation): for each policy, "
        "the largest gap in success rate at the reference site among the policies the "
        "predicting site orders the other way, averaged over the policies; 0 means the same "
        "order, lower is better, and it is asymmetric. Kendall tau-b and Pearson r of the "
        f"success rates (1: same order; symmetric). Intervals: percentile bootstrap {pct} "
        f"over episodes ({result.n_resamples} resamples; each (policy, site) cell's episodes "
        "resampled with replacement; a cell of 0/n or n/n does not vary, so an interval may "
        "have zero width). n/a where undefined, with the reason. "
        f"Every value: {PREDICTIVITY_CSV}."
    )
    blocks: list[Block] = [
        ("h2", "Does one site predict another?", "predictivity"),
        ("p", explain),
    ]
    if len(result.sites) < 2:
        return [*blocks, ("p", "Only one site was evaluated: there is no other site to predict.")]
    rows = [
        [
            pair.predictor,
            pair.reference,
            str(len(pair.policies)),
            pair.mmrv.format(),
            pair.kendall.format(),
            pair.pearson.format(),
            pair.note or "-",
        ]
        for pair in result.pairs.values()
    ]
    header = ["predicting site", "reference site", "policies", "MMRV", "Kendall tau", "Pearson r"]
    best = (
        "Best predictor of each site: the lowest MMRV, ties broken by the higher Kendall tau, "
        "then the higher Pearson r."
    )
    return [
        *blocks,
        ("table", [*header, "note"], rows),
        ("img", HEATMAP, "site predictivity heatmap (MMRV, Kendall tau)"),
        ("p", best),
        ("ul", [result.best_sentence(site) for site in result.sites]),
    ]


def _version(attribution: Attribution) -> str:
    """``id@version`` of a policy (``-`` where its records name none)."""
    known = attribution
    if not known.policy_id:
        return "-"
    return f"{known.policy_id}@{known.version}" if known.version else known.policy_id


def _leaderboard(board: Leaderboard, teams: dict[str, Attribution]) -> list[Block]:
    pct = f"{board.confidence:.0%}"
    explain = (
        "Bradley-Terry ratings from paired episodes: two policies are compared on every "
        "episode they both ran with the same seed at the same site; success against failure "
        "is a win, both succeeding or both failing a tie (half a win each), and one virtual "
        f"tie per pair of policies keeps an unbeaten policy's rating finite (prior "
        f"{board.prior:g}). A rating is the log-odds of winning, mean 0: P(A beats B) = "
        f"1 / (1 + exp(rating_B - rating_A)). Intervals: percentile bootstrap {pct} over the "
        f"(task, site, seed) units, resampled within each (task, site) ({DEFAULT_RESAMPLES} "
        f"resamples). Every value: {LEADERBOARD_CSV}."
    )
    blocks: list[Block] = [("h2", "Leaderboard", "leaderboard"), ("p", explain)]
    for scope, ratings in board.ratings.items():
        if len(board.ratings) > 1:
            blocks.append(("h3", "All tasks" if scope == OVERALL else f"Task {scope}"))
        rows = [
            [
                str(rank) if r.comparisons else "-",
                r.policy,
                teams.get(r.policy, Attribution()).team or "-",
                _version(teams.get(r.policy, Attribution())),
                r.rating.format(),
                f"{r.wins:g} / {r.ties:g} / {r.losses:g}",
            ]
            for rank, r in enumerate(ratings, start=1)
        ]
        header = ["rank", "policy", "team", "policy id@version", "Bradley-Terry rating",
                  "wins / ties / losses"]  # fmt: skip
        blocks.append(("table", header, rows))
    if len(board.policies) < 2:
        blocks.append(("p", "One policy only: no comparison, no rating (n/a)."))
        return blocks
    return [*blocks, *_rliable(board)]


def _rliable(board: Leaderboard) -> list[Block]:
    unit = board.unit
    runs = (
        "a run is a training seed (its success rate)"
        if unit == SEED_UNIT
        else "a run is an episode (1 success, 0 failure; fewer than two training seeds)"
    )
    improvement = (
        f"rliable's probability of improvement P(row > column): per (task, site) the "
        f"Mann-Whitney U / (N M) of the row policy's runs against the column's (a tie counts "
        f"a half), averaged over the (task, site) both ran; {runs}. Interval: stratified "
        f"bootstrap {board.confidence:.0%}, each policy's runs resampled within each (task, "
        "site). 0.5: no difference."
    )
    matrix = [
        [x, *("-" if x == y else _or_na(board.improvement.get((x, y))) for y in board.policies)]
        for x in board.policies
    ]
    profile = (
        "Performance profile (rliable's score distribution): the fraction of a policy's runs "
        "with a score above tau, averaged over its (task, site)."
    )
    if unit != "training seed":
        profile += " With episodes as runs (0 or 1) every tau below 1 gives the success rate."
    taus = [f"runs > {tau:g}" for tau in board.taus]
    profiles = [[p, *(e.format() for e in board.profiles[p])] for p in board.policies]
    return [
        ("h3", "Probability of improvement"),
        ("p", improvement),
        ("table", ["P(row > column)", *board.policies], matrix),
        ("h3", "Performance profiles"),
        ("p", profile),
        ("table", ["policy", *taus], profiles),
    ]


def _or_na(estimate: Estimate | None) -> str:
    """An estimate's text; ``n/a (no shared site)`` for policies that never met."""
    return "n/a (no shared site)" if estimate is None else estimate.format()
