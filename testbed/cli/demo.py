"""``testbed demo``: the scripted controller of every site evaluated at every site (in-process).

A small end-to-end run on the packaged sites: for each (controller home site, target site)
pair it runs N seeded episodes (the same seeds at every site) and prints the transfer table:
success rate with its Wilson 95% interval, parts sorted, cycle time, energy per part and
safety violations.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy.stats import binomtest

from testbed.cli import app


@dataclass(frozen=True)
class CellResult:
    """Aggregated episodes of one (home site, target site) pair."""

    home: str
    target: str
    successes: int
    episodes: int
    parts_sorted: float
    cycle_time_s: float
    energy_per_part_j: float
    violations_per_1000_steps: float


def evaluate_pair(home: str, target: str, seeds: list[int]) -> CellResult:
    """Run the controller tuned for `home` at `target` for each seed (runs in a worker)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the env ids)
    from policies.scripted import scripted_policy
    from testbed.policy import SessionInfo
    from testbed.rollout import run_episode

    env = gym.make("Testbed/ConveyorSort-v0", site=target)
    policy = scripted_policy(home)
    results = [
        run_episode(env, policy, SessionInfo(f"{home}->{target}", target, "demo", i, seed))
        for i, seed in enumerate(seeds)
    ]
    env.close()
    metrics = [r.metrics for r in results]
    return CellResult(
        home=home,
        target=target,
        successes=sum(r.success for r in results),
        episodes=len(results),
        parts_sorted=_mean(m.get("parts_sorted", 0) for m in metrics),
        cycle_time_s=_mean(m.get("cycle_time_s", math.nan) for m in metrics),
        energy_per_part_j=_mean(m.get("energy_per_part_j", math.nan) for m in metrics),
        violations_per_1000_steps=_mean(m.get("violations_per_1000_steps", 0) for m in metrics),
    )


def _mean(values: object) -> float:
    finite = [float(v) for v in values if not math.isnan(float(v))]  # type: ignore[attr-defined]
    return sum(finite) / len(finite) if finite else math.nan


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Wilson score 95% interval of a success rate (scipy)."""
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@app.command()
def demo(
    episodes: int = typer.Option(10, min=1, help="Episodes per (controller, site) pair."),
    seed: int = typer.Option(0, help="First seed; pair i uses seeds seed..seed+episodes-1."),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), min=1, help="Worker processes."),
    sites: str = typer.Option("", help="Comma-separated site ids (default: every packaged site)."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Also write the table as CSV here."),
) -> None:
    """Evaluate each site's scripted controller at every site and print the transfer table."""
    from envs.sites import list_sites

    chosen = [s for s in sites.split(",") if s] or list_sites()
    seeds = list(range(seed, seed + episodes))
    pairs = [(home, target) for home in chosen for target in chosen]
    results: dict[tuple[str, str], CellResult] = {}
    with Progress(transient=True) as progress, ProcessPoolExecutor(workers) as pool:
        task = progress.add_task(f"{len(pairs)} pairs x {episodes} episodes", total=len(pairs))
        futures = [pool.submit(evaluate_pair, home, target, seeds) for home, target in pairs]
        for future in futures:
            cell = future.result()
            results[(cell.home, cell.target)] = cell
            progress.advance(task)
    console = Console()
    console.print(_table(chosen, results))
    if csv_out is not None:
        _write_csv(csv_out, results.values())
        console.print(f"table written to {csv_out}")


def _table(sites: list[str], results: dict[tuple[str, str], CellResult]) -> Table:
    table = Table(title="Scripted controller transfer: success_at_end [Wilson 95%], rows = home")
    table.add_column("controller tuned for")
    for target in sites:
        table.add_column(f"at {target}", justify="center")
    for home in sites:
        row = [home]
        for target in sites:
            cell = results[(home, target)]
            low, high = wilson_interval(cell.successes, cell.episodes)
            row.append(
                f"{cell.successes}/{cell.episodes} [{low:.2f}, {high:.2f}]\n"
                f"cycle {cell.cycle_time_s:.1f}s  E/part {cell.energy_per_part_j:.0f}J\n"
                f"viol/1k {cell.violations_per_1000_steps:.1f}"
            )
        table.add_row(*row)
    return table


def _write_csv(path: Path, cells: object) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "home",
                "target",
                "successes",
                "episodes",
                "wilson_low",
                "wilson_high",
                "parts_sorted",
                "cycle_time_s",
                "energy_per_part_j",
                "violations_per_1000_steps",
            ]
        )
        for c in cells:  # type: ignore[attr-defined]
            low, high = wilson_interval(c.successes, c.episodes)
            writer.writerow(
                [
                    c.home,
                    c.target,
                    c.successes,
                    c.episodes,
                    f"{low:.4f}",
                    f"{high:.4f}",
                    f"{c.parts_sorted:.3f}",
                    f"{c.cycle_time_s:.3f}",
                    f"{c.energy_per_part_j:.3f}",
                    f"{c.violations_per_1000_steps:.3f}",
                ]
            )
