"""The KPI registry: checked against the envs' summaries and the docs; typos raise, gaps say n/a."""

from __future__ import annotations

import dataclasses
import math
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import envs
from testbed.episodes.outcomes import SUCCESS_KEY, SUMMARY_KEY
from testbed.results.evaluator import transfer_matrix
from testbed.results.kpi_docs import DOCS_BEGIN, DOCS_END, docs_table
from testbed.results.kpis import (
    ENV,
    INTERVAL,
    KPI,
    KPIS,
    TESTBED,
    Chart,
    Registry,
)
from testbed.results.statistics import Estimate

DOCS = Path(__file__).parents[2] / "docs" / "campaigns.md"
#: Constructor arguments that keep an episode short.
SHORT = {"Testbed/TouchPart-v0": {"time_limit_s": 0.5}}
MAX_STEPS = 40
SUGGESTION = r"unknown KPI .*: did you mean '\w+'( or '\w+')*\? known KPIs: cycle_time_median_s, "


def _summary(env_id: str) -> dict[str, Any]:
    """The episode summary of a short episode: at its end, or asked for when it is cut."""
    env = gym.make(env_id, **SHORT.get(env_id, {}))
    try:
        env.reset(seed=0)
        for _ in range(MAX_STEPS):
            *_, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, "float32"))
            if terminated or truncated:
                return dict(info["episode_metrics"])
        return dict(env.unwrapped.episode_summary())  # type: ignore[attr-defined]
    finally:
        env.close()


@pytest.fixture(scope="module")
def summaries() -> dict[str, dict[str, Any]]:
    return {env_id: _summary(env_id) for env_id in envs.ENV_IDS}


def _produces(summary: dict[str, Any], key: str) -> bool:
    if not key.endswith("*"):
        return key in summary
    own = {k.name for k in KPIS.values()}  # e.g. violations_per_1000_steps is not a kind
    return any(fnmatchcase(k, key) and k not in own for k in summary)


def test_both_registered_envs_are_checked() -> None:
    assert {"Testbed/ConveyorSort-v0", "Testbed/TouchPart-v0"} <= set(envs.ENV_IDS)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_every_summary_key_is_produced_by_every_env_or_declared_task_specific(
    summaries: dict[str, dict[str, Any]], env_id: str
) -> None:
    summary = summaries[env_id]
    assert SUCCESS_KEY in summary and SUMMARY_KEY in summary
    for kpi in KPIS.values():
        if kpi.source == ENV or (isinstance(kpi.source, tuple) and env_id in kpi.source):
            assert _produces(summary, kpi.summary_key), (
                f"KPI {kpi.name}: {env_id}'s episode summary has no {kpi.summary_key!r} "
                f"(keys: {sorted(summary)}); fix the key or declare the KPI task-specific"
            )


def test_task_specific_kpis_name_registered_envs() -> None:
    for kpi in KPIS.values():
        if isinstance(kpi.source, tuple):
            assert set(kpi.source) <= set(envs.ENV_IDS), kpi.name
        else:
            assert kpi.source in (ENV, TESTBED), kpi.name


def test_docs_table_is_the_registry() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert text.count(DOCS_BEGIN) == 1 and text.count(DOCS_END) == 1
    in_docs = text.split(DOCS_BEGIN + "\n", 1)[1].split(DOCS_END, 1)[0]
    assert in_docs == docs_table(), (
        "the KPI table of docs/campaigns.md is stale: "
        "run `python -m testbed.results.kpi_docs --write`"
    )
    for kpi in KPIS.values():
        assert f"| {kpi.column} | `{kpi.name}` |" in in_docs


@pytest.mark.parametrize(
    "typo", ["cycle_time_median", "energy_per_part", "parts/h", "latncy_p50_ms"]
)
def test_an_unknown_kpi_name_raises_with_a_suggestion(typo: str) -> None:
    with pytest.raises(KeyError, match=SUGGESTION):
        KPIS[typo]
    cell = transfer_matrix(_episodes()).cell("p", "a")
    assert cell is not None
    with pytest.raises(KeyError, match=f"unknown KPI {typo!r}"):
        cell.kpi(typo)


def test_a_misspelt_cell_attribute_raises_instead_of_reading_n_a() -> None:
    cell = transfer_matrix(_episodes()).cell("p", "a")
    assert cell is not None
    assert cell.cycle_time_median_s == cell.kpi("cycle_time_median_s") == 2.0
    with pytest.raises(AttributeError, match="did you mean 'cycle_time_median_s'"):
        _ = cell.cycle_time_medain_s
    assert not hasattr(cell, "nonsense")
    with pytest.raises(KeyError, match="'nonsense'"):
        KPIS["nonsense"]


def _kpi(**changes: Any) -> KPI:
    return dataclasses.replace(KPIS["cycle_time_median_s"], **changes)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([_kpi(), _kpi(column="other")], "duplicate name 'cycle_time_median_s'"),
        ([_kpi(chart=Chart("t", whisker="cycle_time_p99_s"))], "whisker 'cycle_time_p99_s'"),
        ([_kpi(chart=None, aggregation="avg")], "aggregation 'avg'"),
        ([_kpi(chart=None, over="succesful")], "over 'succesful'"),
        ([_kpi(chart=None, fmt="%.2f")], "bad format"),
        ([_kpi(chart=None, source="envs")], "source 'envs'"),
    ],
    ids=["duplicate", "whisker", "aggregation", "over", "format", "source"],
)
def test_a_bad_registry_entry_is_refused(entries: list[KPI], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Registry(entries)


def test_formats() -> None:
    assert KPIS["violation_share"].format(0.1) == "10%"
    assert KPIS["energy_per_part_j"].format(Estimate(104.46, 102.71, 106.33)) == (
        "104.5 [102.7, 106.3]"
    )
    assert KPIS["energy_per_part_j"].format(Estimate(5.0)) == "5.0"
    assert KPIS["deadline_misses"].format(2) == "2"
    for kpi in KPIS.values():
        assert kpi.format(math.nan) == kpi.format(Estimate.undefined()) == "n/a"


def test_every_chart_whisker_is_a_kpi_or_the_interval() -> None:
    charts = [k.chart for k in KPIS.values() if k.chart is not None]
    assert len(charts) == 6  # kpis.png: 3 x 2 panels (two of them energy)
    assert all(c.whisker in (None, INTERVAL, *KPIS) for c in charts)


def _episodes(**columns: list[Any]) -> pd.DataFrame:
    base: dict[str, list[Any]] = {
        "policy": ["p"] * 4,
        "home_site": ["a"] * 4,
        "site": ["a"] * 4,
        "seed": [0, 1, 2, 3],
        "success": [True, True, False, False],
        "ended_by": ["terminated"] * 3 + ["fault"],
        "cycle_time_s": [1.0, 3.0, 9.0, math.nan],
        "steps": [100] * 4,
        "violations_tcp_speed": [1, 0, 0, math.nan],
    }
    return pd.DataFrame({**base, **columns})


def test_missing_data_is_n_a_and_told_apart_from_a_cell_without_data() -> None:
    full = transfer_matrix(_episodes())
    cell = full.cell("p", "a")
    assert cell is not None
    assert cell.kpi("cycle_time_median_s") == 2.0  # successes only
    assert cell.kpi("violations_per_1000_steps") == pytest.approx(1000 * 1 / 300)  # no fault
    assert cell.kpi("faulted_episodes") == 1
    assert "cycle_time_median_s" not in full.absent_kpis
    assert "throughput_parts_per_h" in full.absent_kpis  # no record has that column
    # The column exists but no episode succeeded: n/a in the cell, yet not absent.
    failed = transfer_matrix(_episodes(success=[False] * 4))
    assert math.isnan(failed.cell("p", "a").kpi("cycle_time_median_s"))  # type: ignore[union-attr]
    assert "cycle_time_median_s" not in failed.absent_kpis
    # Older records without the column at all: n/a, and named as absent.
    older = transfer_matrix(_episodes().drop(columns="cycle_time_s"))
    assert {"cycle_time_median_s", "cycle_time_p90_s"} <= set(older.absent_kpis)


def test_matrix_columns_follow_the_registry() -> None:
    frame = transfer_matrix(_episodes()).to_frame()
    names = [c for c in frame.columns if c.removesuffix("_low").removesuffix("_high") in KPIS]
    expected = []
    for kpi in KPIS.values():
        expected.append(kpi.name)
        if kpi.chart is not None and kpi.chart.whisker == INTERVAL:
            expected += [f"{kpi.name}_low", f"{kpi.name}_high"]
    assert names == expected
