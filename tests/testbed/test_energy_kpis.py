"""Energy KPIs on hand-made episode rows: each formula, unknowns, a site where every policy
fails, ties and a single policy (testbed.results.energy through the KPI registry)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from testbed.episodes.records import EpisodeMeta
from testbed.episodes.rows import compute_columns, episode_row
from testbed.results.energy import J_PER_KWH, sources
from testbed.results.evaluator import transfer_matrix
from testbed.results.kpis import KPIS
from testbed.results.statistics import Estimate

ENERGY_KPIS = ("compute_j_per_action", "energy_per_good_part_j", "compute_share",
               "successes_per_kj", "cost_per_1000_episodes")  # fmt: skip


def _row(policy: str, site: str, seed: int, *, robot: float, compute: float | None,
         actions: int, parts: int, success: bool, price: float | None = 0.25,
         ended_by: str = "terminated") -> dict[str, Any]:  # fmt: skip
    summary = {"joules": compute, "actions": actions, "cpu_seconds": 0.0,
               "source": "cpu-estimate" if compute is not None else "unknown",
               "price_per_kwh": price, "currency": "EUR"}  # fmt: skip
    return {
        "policy": policy, "home_site": "a", "site": site, "policy_seed": None, "seed": seed,
        "env_id": "Testbed/ConveyorSort-v0", "success": success, "ended_by": ended_by,
        "outcome": "success" if success else "time limit", "steps": actions,
        "energy_j": robot, "parts_sorted": parts, **compute_columns(summary),
    }  # fmt: skip


def _value(name: str, rows: list[dict[str, Any]]) -> float:
    value = KPIS[name].aggregate(pd.DataFrame(rows))
    return value.value if isinstance(value, Estimate) else float(value)


ROWS = [
    _row("p", "a", 0, robot=100.0, compute=1.0, actions=100, parts=2, success=True),
    _row("p", "a", 1, robot=300.0, compute=3.0, actions=200, parts=0, success=False),
]


def test_each_formula_on_two_episodes() -> None:
    assert _value("compute_j_per_action", ROWS) == pytest.approx((0.01 + 0.015) / 2)
    assert _value("energy_per_good_part_j", ROWS) == pytest.approx(404.0 / 2)
    assert _value("compute_share", ROWS) == pytest.approx(4.0 / 404.0)
    assert _value("successes_per_kj", ROWS) == pytest.approx(1 / 0.404)
    per_episode_kwh = np.array([101.0, 303.0]) / J_PER_KWH
    assert _value("cost_per_1000_episodes", ROWS) == pytest.approx(
        float((per_episode_kwh * 0.25).mean()) * 1000
    )


def test_faulted_episodes_are_left_out_of_the_pooled_energy() -> None:
    faulted = _row("p", "a", 2, robot=math.nan, compute=9.0, actions=3, parts=0,
                   success=False, ended_by="fault")  # fmt: skip
    assert _value("energy_per_good_part_j", [*ROWS, faulted]) == pytest.approx(202.0)
    # ... but its compute per action counts: the policy spent it
    assert _value("compute_j_per_action", [*ROWS, faulted]) == pytest.approx(
        (0.01 + 0.015 + 3.0) / 3
    )


def test_unknown_compute_is_never_zero() -> None:
    unknown = _row("p", "a", 2, robot=50.0, compute=None, actions=0, parts=1, success=True)
    assert unknown["compute_j"] != unknown["compute_j"]  # NaN, not 0
    assert math.isnan(unknown["compute_j_per_action"])
    for name in ENERGY_KPIS[1:]:
        assert math.isnan(_value(name, [*ROWS, unknown])), name
    assert KPIS["energy_per_good_part_j"].format(math.nan) == "n/a"
    assert sources(pd.DataFrame([*ROWS, unknown])) == "cpu-estimate, unknown"


def test_no_price_means_no_cost() -> None:
    rows = [{**r, "energy_price_per_kwh": math.nan} for r in ROWS]
    assert math.isnan(_value("cost_per_1000_episodes", rows))
    assert _value("energy_per_good_part_j", rows) == pytest.approx(202.0)


def test_a_site_where_every_policy_fails() -> None:
    rows = [
        _row(p, "b", s, robot=200.0, compute=2.0, actions=50, parts=0, success=False)
        for p in ("p", "q") for s in (0, 1)
    ]  # fmt: skip
    for policy in ("p", "q"):
        mine = [r for r in rows if r["policy"] == policy]
        assert math.isnan(_value("energy_per_good_part_j", mine))  # no part: no J per part
        assert _value("successes_per_kj", mine) == 0.0  # energy spent, nothing gained
        assert _value("compute_share", mine) == pytest.approx(4.0 / 404.0)
        assert _value("compute_j_per_action", mine) == pytest.approx(0.04)


def test_in_the_matrix_with_ties_and_a_single_policy() -> None:
    """One policy at two sites with the same energy per action (a tie); the second site fails."""
    rows = [*ROWS]
    rows += [_row("p", "b", s, robot=250.0, compute=1.25, actions=100, parts=0, success=False)
             for s in (0, 1)]  # fmt: skip
    report = transfer_matrix(pd.DataFrame(rows))
    assert report.policies == ("p",)
    home, away = report.cell("p", "a"), report.cell("p", "b")
    assert home is not None and away is not None
    assert (
        KPIS["compute_j_per_action"].format(away.kpi("compute_j_per_action")).startswith("0.0125")
    )
    assert home.kpi("energy_per_good_part_j") == pytest.approx(202.0)
    assert math.isnan(away.kpi("energy_per_good_part_j"))
    assert away.kpi("successes_per_kj") == 0.0
    tied = transfer_matrix(pd.DataFrame([*ROWS, *[{**r, "site": "b"} for r in ROWS]]))
    a, b = tied.cell("p", "a"), tied.cell("p", "b")
    assert a is not None and b is not None
    for name in ENERGY_KPIS:
        assert KPIS[name].format(a.kpi(name)) == KPIS[name].format(b.kpi(name)), name
    frame = report.to_frame()
    assert {"compute_j_per_action", "energy_per_good_part_j", "cost_per_1000_episodes"} <= set(
        frame.columns
    )


def test_records_without_compute_have_no_compute_columns() -> None:
    meta = EpisodeMeta(env_id="Testbed/ConveyorSort-v0", env_kwargs={}, site="a",
                       bundle_hash="h", seed=0, episode=0)  # fmt: skip
    assert not any(key.startswith("compute_") for key in episode_row(meta))
    measured = EpisodeMeta.from_json(
        EpisodeMeta(
            **{**meta.__dict__, "compute": {"joules": 0.5, "actions": 4, "source": "rapl"}}
        ).to_json()  # fmt: skip
    )
    row = episode_row(measured)
    assert row["compute_j"] == 0.5 and row["compute_j_per_action"] == 0.125
    assert row["compute_source"] == "rapl" and math.isnan(row["energy_price_per_kwh"])
