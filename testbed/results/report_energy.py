"""The report's "Energy" section: robot energy and the policy's compute, with their sources.

One row per (policy, site) cell: where the compute figures come from (RAPL, NVML, CPU time x
watts per core, or unknown), compute J per action, J per good part (robot + compute) with each
part's share, successes per kJ and, with a configured price, the cost per 1,000 episodes. The
values are the cells' KPIs (`testbed.results.kpis`, `testbed.results.energy`); n/a is unknown or
undefined, never 0.
"""

from __future__ import annotations

import math

import pandas as pd

from testbed.results.energy import sources
from testbed.results.episode_pages import cell_link
from testbed.results.evaluator import MatrixCell, TransferReport
from testbed.results.kpis import KPIS, point
from testbed.results.report_blocks import Block

_SHOWN = ("compute_j_per_action", "energy_per_good_part_j", "successes_per_kj",
          "cost_per_1000_episodes")  # fmt: skip


def energy_blocks(report: TransferReport, episodes: pd.DataFrame) -> list[Block]:
    """The section's blocks (a note instead of the table when no record holds compute)."""
    blocks: list[Block] = [
        ("h2", "Energy", "energy"),
        ("p", "Robot energy is the env's sum of |torque x joint velocity| x dt. The policy's "
              "compute energy is measured per call where the policy ran: the Linux RAPL "
              "package counters (rapl) or NVIDIA GPU counters (+nvml) where readable, "
              "otherwise its process CPU time x a configured watts per core (cpu-estimate); "
              "a remote policy's server reports its own figure in each reply. RAPL and NVML "
              "count the whole package or GPU during the call. J per good part pools the "
              "episodes that ended normally: (robot + compute) / parts completed. n/a means "
              "unknown (a server that does not report compute) or undefined (no part "
              "completed), never 0."),
    ]  # fmt: skip
    if "compute_j" not in episodes:
        return [*blocks, ("p", "No episode record holds compute energy (recorded before it).")]
    blocks.append(("p", _price(episodes)))
    header = ["policy", "site", "compute source", *(KPIS[k].column for k in _SHOWN[:2]),
              "robot / compute share", *(KPIS[k].column for k in _SHOWN[2:])]  # fmt: skip
    rows = []
    for policy in report.policies:
        for site in report.sites:
            if (cell := report.cell(policy, site)) is not None:
                mine = episodes[(episodes["policy"] == policy) & (episodes["site"] == site)]
                rows.append(_row(cell, mine))
    return [*blocks, ("table", header, rows, "filterable")]


def _row(cell: MatrixCell, episodes: pd.DataFrame) -> list[object]:
    values = [KPIS[k].format(cell.kpi(k)) for k in _SHOWN]
    return [cell.policy, cell_link(cell, cell.site), _source(episodes), *values[:2],
            _shares(point(cell.kpi("compute_share"))), *values[2:]]  # fmt: skip


def _source(episodes: pd.DataFrame) -> str:
    """The cell's sources, with the watts per core of a testbed-side estimate."""
    label = sources(episodes)
    if "compute_watts_per_core" in episodes:
        watts = pd.to_numeric(episodes["compute_watts_per_core"], errors="coerce").dropna()
        if len(watts):
            label += f" ({', '.join(f'{w:g}' for w in sorted(set(watts)))} W per core)"
    return label


def _shares(compute: float) -> str:
    if not math.isfinite(compute):
        return "n/a"
    return f"{1 - compute:.2%} / {compute:.2%}"


def _price(episodes: pd.DataFrame) -> str:
    prices = episodes.get("energy_price_per_kwh", pd.Series(dtype=float))
    known = pd.to_numeric(prices, errors="coerce").dropna()
    if known.empty:
        return "Cost: no energy price configured (energy.price_per_kwh), so no cost is shown."
    currency = ", ".join(sorted(set(episodes.get("energy_currency", pd.Series(["?"])).dropna())))
    price = ", ".join(f"{p:g}" for p in sorted(set(known)))
    return f"Cost at {price} {currency} per kWh (energy.price_per_kwh), robot + compute."
