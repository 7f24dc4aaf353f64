"""Energy KPIs of a transfer-matrix cell: robot energy and the policy's compute, together.

Aggregations of `testbed.results.kpis.AGGREGATIONS`, each over a cell's episode rows (those that
ended normally: an episode cut short by a fault has no robot energy to add). Columns read:
``energy_j`` (the env's robot energy), ``compute_j`` (the policy's, `testbed.episodes.rows.
compute_columns`), ``parts_sorted`` (parts the task completed), ``success`` and
``energy_price_per_kwh``.

Unknown is never 0: where any episode of the cell lacks its robot or compute energy (a server
that does not report compute, records older than compute energy), every KPI here is NaN
("n/a"). Where the energy is known but nothing was produced:

- J per good part is NaN: no part was completed, so there is no energy per part to state (not
  infinity, and not 0); successes per kJ then says 0, which is true.
- the compute share is NaN only when no energy at all was spent.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Joules in a kilowatt hour.
J_PER_KWH = 3.6e6


def _values(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def energy_parts(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per episode: (robot J, compute J); None if the cell is empty or any is unknown."""
    robot, compute = _values(rows, "energy_j"), _values(rows, "compute_j")
    if not len(rows) or not (np.isfinite(robot).all() and np.isfinite(compute).all()):
        return None
    return robot, compute


def per_good_part(rows: pd.DataFrame, key: str, confidence: float) -> float:
    """(robot J + compute J) / parts completed, pooled over the cell's episodes."""
    parts = energy_parts(rows)
    done = float(np.nansum(_values(rows, "parts_sorted")))
    if parts is None or done <= 0:
        return math.nan
    return float(parts[0].sum() + parts[1].sum()) / done


def compute_share(rows: pd.DataFrame, key: str, confidence: float) -> float:
    """Compute J / (robot J + compute J), pooled; the robot's share is 1 minus it."""
    parts = energy_parts(rows)
    if parts is None:
        return math.nan
    total = float(parts[0].sum() + parts[1].sum())
    return float(parts[1].sum()) / total if total > 0 else math.nan


def successes_per_kj(rows: pd.DataFrame, key: str, confidence: float) -> float:
    """Successful episodes per kJ of robot + compute energy, pooled."""
    parts = energy_parts(rows)
    if parts is None:
        return math.nan
    total_kj = float(parts[0].sum() + parts[1].sum()) / 1000.0
    successes = float(rows["success"].astype(bool).sum()) if "success" in rows else math.nan
    return successes / total_kj if total_kj > 0 else math.nan


def cost_per_1000_episodes(rows: pd.DataFrame, key: str, confidence: float) -> float:
    """Mean energy per episode (robot + compute) x the configured price, x 1,000 episodes.

    NaN where no price is configured (``energy.price_per_kwh`` null) or the energy is unknown.
    """
    parts = energy_parts(rows)
    price = _values(rows, "energy_price_per_kwh")
    if parts is None or not np.isfinite(price).all():
        return math.nan
    kwh = (parts[0] + parts[1]) / J_PER_KWH
    return float((kwh * price).mean()) * 1000.0


def sources(rows: pd.DataFrame) -> str:
    """The compute sources of a cell's episodes (``unknown`` where none is recorded)."""
    if "compute_source" not in rows:
        return "unknown"
    labels = rows["compute_source"].fillna("unknown").astype(str)
    return ", ".join(sorted(set(labels))) or "unknown"
