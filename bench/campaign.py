"""Campaign throughput: episodes per second with 1 and 2 trial workers, in one run.

    .venv/bin/python bench/campaign.py [--quick]

Runs the same fixed campaign (scripted controllers over gRPC, managed servers, 4 trials) with
the joblib launcher at ``campaign.workers=1`` and ``=2``, each from a fresh folder, and prints
episodes/s and their ratio (goal >= 1.7x on 2 cores). Wall time includes everything a user
waits for: Hydra start-up, policy servers, simulation, recording; not the report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def campaign_args(episodes: int, max_steps: int) -> list[str]:
    """The fixed benchmark campaign: 2 policies x 2 sites, short episodes."""
    return ["-m", "policy=scripted_kr,scripted_jp", "site=kr-changwon,jp-nagoya",
            f"campaign.episodes={episodes}", f"task.max_steps={max_steps}",
            "campaign.report=false", "campaign.progress=false",
            "hydra/launcher=local"]  # fmt: skip


def episodes_per_second(workers: int, episodes: int, max_steps: int) -> tuple[float, float]:
    """Run the campaign with ``workers`` parallel trials; returns (episodes/s, wall seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as folder:
        args = [*campaign_args(episodes, max_steps), f"campaign.workers={workers}",
                f"campaign.dir={folder}/campaign"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "testbed", "run", *args],
            cwd=folder, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"campaign failed:\n{result.stderr[-3000:]}")
        recorded = len(list(Path(folder, "campaign").glob("*/episodes/ep-*.npz")))
        if recorded != 4 * episodes:
            raise SystemExit(f"expected {4 * episodes} episodes, found {recorded}")
    return recorded / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter episodes")
    options = parser.parse_args()
    episodes, max_steps = (2, 200) if options.quick else (4, 600)
    rows = {w: episodes_per_second(w, episodes, max_steps) for w in (1, 2)}
    table = Table("workers", "episodes/s", "wall s", "ratio vs 1", title="campaign throughput")
    for workers, (rate, wall) in rows.items():
        ratio = rate / rows[1][0]
        table.add_row(str(workers), f"{rate:.2f}", f"{wall:.1f}", f"{ratio:.2f}x")
    Console().print(table)
    print(f"goal: 2 workers >= 1.7x 1 worker: {rows[2][0] / rows[1][0]:.2f}x")


if __name__ == "__main__":
    main()
