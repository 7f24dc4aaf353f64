"""The report's predictivity and leaderboard sections: blocks, CSVs and figure."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from testbed.results.report_blocks import to_html, to_markdown
from testbed.results.report_ranking import ranking_blocks

# (policy, site) -> successes among seeds 0..9; us-austin: every policy fails.
RATES = {
    ("p1", "kr"): 9, ("p2", "kr"): 5, ("p3", "kr"): 1,
    ("p1", "jp"): 5, ("p2", "jp"): 6, ("p3", "jp"): 2,
    ("p1", "us"): 0, ("p2", "us"): 0, ("p3", "us"): 0,
}  # fmt: skip


def _episodes(rates: dict[tuple[str, str], int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"policy": p, "site": s, "seed": seed, "success": seed < k}
        for (p, s), k in rates.items()
        for seed in range(10)
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("ranking")
    blocks = ranking_blocks(_episodes(RATES), out)
    return out, to_markdown(blocks), to_html(blocks, out, "t")


def test_sections_csvs_and_figure(rendered: tuple[Path, str, str]) -> None:
    out, markdown, html = rendered
    assert "## Does one site predict another?" in markdown and "## Leaderboard" in markdown
    assert (out / "predictivity.png").read_bytes().startswith(b"\x89PNG")
    assert html.count('src="data:image/png;base64,') == 1
    predictivity = pd.read_csv(out / "predictivity.csv")
    assert len(predictivity) == 6
    jp_kr = predictivity.set_index(["predictor", "reference"]).loc[("jp", "kr")]
    assert jp_kr["mmrv"] == pytest.approx((0.4 + 0.4) / 3)
    board = pd.read_csv(out / "leaderboard.csv")
    ratings = board[board["statistic"] == "bradley_terry"].sort_values("rank")
    assert ratings["policy"].tolist() == ["p1", "p2", "p3"]
    assert set(board["statistic"]) == {"bradley_terry", "prob_improvement", "profile"}


def test_undefined_values_are_said_never_printed(rendered: tuple[Path, str, str]) -> None:
    out, markdown, _ = rendered
    assert not re.search(r"\bnan\b", markdown, re.IGNORECASE)
    assert "every policy fails at us: r and tau undefined" in markdown
    assert "us: every policy fails at us, so it has no ranking" in markdown
    assert "kr is best predicted by jp (MMRV 0.27" in markdown
    assert pd.read_csv(out / "predictivity.csv").query("reference == 'us'")["pearson"].isna().all()


def test_one_site_and_one_policy(tmp_path: Path) -> None:
    markdown = to_markdown(ranking_blocks(_episodes({("solo", "kr"): 4}), tmp_path))
    assert "Only one site was evaluated" in markdown
    assert "One policy only: no comparison, no rating (n/a)." in markdown
    assert not (tmp_path / "predictivity.png").exists()
    assert not re.search(r"\bnan\b", markdown, re.IGNORECASE)
