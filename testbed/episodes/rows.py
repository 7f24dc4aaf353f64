"""One flat row per episode for the episode table (pandas / SQL), from its record's meta.

`episode_row` gives identity, outcome, metrics and latency; `compute_columns` the policy's
compute energy (unknown stays NaN, never 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from testbed.episodes.records import EpisodeMeta


def episode_row(meta: EpisodeMeta, latencies_ms: np.ndarray | None = None) -> dict[str, Any]:
    """One flat row for the episode table (pandas / SQL): identity, outcome, metrics, latency."""
    latencies = np.asarray(latencies_ms if latencies_ms is not None else [], dtype=np.float64)
    row: dict[str, Any] = {
        "campaign": meta.campaign,
        "trial": meta.trial,
        "policy": meta.policy,
        "policy_id": meta.policy_id,
        "team": meta.team,
        "home_site": meta.home_site,
        "policy_seed": meta.policy_seed,
        "site": meta.site,
        "env_id": meta.env_id,
        "seed": meta.seed,
        "episode": meta.episode,
        "ended_by": meta.ended_by,
        "outcome": meta.outcome,
        "steps": meta.steps,
        "total_reward": meta.total_reward,
        "faults": len(meta.faults),
        "fault_kinds": ";".join(sorted({f.kind for f in meta.faults})),
        "first_fault": meta.faults[0].message if meta.faults else "",
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies.size else math.nan,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else math.nan,
        "wall_time_s": meta.wall_time_s,
        "bundle_hash": meta.bundle_hash,
        "config_hash": meta.config_hash,
    }
    for key, value in meta.metrics.items():
        if key != "outcome":  # the env's reason; the row's is the episode's (faults first)
            row[key] = math.nan if value is None else value
    if meta.compute:  # records that predate compute energy get no columns (n/a, not 0)
        row.update(compute_columns(meta.compute))
    return row


def compute_columns(compute: Mapping[str, Any]) -> dict[str, Any]:
    """The episode-table columns of an episode's compute (`EpisodeMeta.compute`).

    ``compute_j`` (NaN when unknown), ``compute_actions`` (actions of the measured calls),
    ``compute_j_per_action`` (NaN without a measured action), ``compute_cpu_s``,
    ``compute_source``, ``compute_watts_per_core``, ``energy_price_per_kwh`` (NaN when no
    price is configured) and ``energy_currency``.
    """
    joules = _number(compute.get("joules"))
    actions = int(compute.get("actions") or 0)
    return {
        "compute_j": joules,
        "compute_actions": actions,
        "compute_j_per_action": joules / actions if actions and math.isfinite(joules) else math.nan,
        "compute_cpu_s": _number(compute.get("cpu_seconds")),
        "compute_source": str(compute.get("source") or "unknown"),
        "compute_watts_per_core": _number(compute.get("watts_per_core")),
        "energy_price_per_kwh": _number(compute.get("price_per_kwh")),
        "energy_currency": str(compute.get("currency") or ""),
    }


def _number(value: Any) -> float:
    """A float, NaN for None (unknown stays unknown, never 0)."""
    return math.nan if value is None else float(value)
