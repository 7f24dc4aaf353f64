"""The KPI registry: every KPI of the transfer report, defined once.

A `KPI` names the episode-table column it reads (``summary_key``: a key of the env's episode
summary, or a column the testbed adds to each episode row), how a cell aggregates it, its column
in the report's KPI table, its unit and format, its bar chart in ``kpis.png`` (if any) and its
line in the docs. The evaluator (`testbed.results.evaluator`), the report
(`testbed.results.report`), the figures (`testbed.results.plots`) and the KPI table of
docs/campaigns.md all read `KPIS`, so adding a KPI is one entry here.

A name that is not registered is an error (`KPIS[name]` raises a KeyError that lists the known
names and suggests the closest); "n/a" only ever means the data lacks the KPI (older records, a
task that does not report it, no successful episode to take a cycle time from).

The docs' KPI table is generated from this registry (`testbed.results.kpi_docs`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from testbed.results import energy
from testbed.results.statistics import Estimate, mean_interval

#: ``KPI.source``: a key of every registered env's episode summary.
ENV = "env"
#: ``KPI.source``: a column the testbed adds to every episode row (latency, fault counts).
TESTBED = "testbed"
#: ``Chart.whisker``: the whisker is the KPI's own confidence interval.
INTERVAL = "interval"

KpiValue = float | int | Estimate


@dataclass(frozen=True)
class Chart:
    """A KPI's bar chart in ``kpis.png``: one bar per (policy, target site).

    Attributes:
        title: Panel title (two lines: what the bar is, what the whisker is).
        whisker: `INTERVAL`, or the name of the KPI the whisker reaches to; None for no whisker.
    """

    title: str
    whisker: str | None = None


@dataclass(frozen=True)
class KPI:
    """One KPI of a transfer-matrix cell.

    Attributes:
        name: Key in `MatrixCell.kpis <testbed.results.evaluator.MatrixCell>` and column of
        ``transfer_matrix.csv``.
        summary_key: The episode-table column aggregated; ``prefix_*`` reads every column with
            that prefix (the per-kind violation counts).
        column: Column label in the report's KPI table.
        unit: Unit of the value.
        aggregation: How a cell aggregates its episodes: a key of `AGGREGATIONS`.
        over: Which of the cell's episodes: a key of `EPISODES`.
        fmt: Format spec of the value (``.2f``, ``.0%``, ``d``); an interval uses it too.
        doc: How it is aggregated, as the docs table says it.
        higher_is_better: Direction of improvement.
        chart: Its panel in ``kpis.png``, or None.
        source: `ENV`, `TESTBED`, or the env ids whose summary holds it (task-specific).
    """

    name: str
    summary_key: str
    column: str
    unit: str
    aggregation: str
    over: str
    fmt: str
    doc: str
    higher_is_better: bool = False
    chart: Chart | None = None
    source: str | tuple[str, ...] = ENV

    def aggregate(self, cell_episodes: pd.DataFrame, confidence: float = 0.95) -> KpiValue:
        """The KPI of one cell from its episode rows (NaN where the data lacks it)."""
        rows = EPISODES[self.over](cell_episodes)
        return AGGREGATIONS[self.aggregation](rows, self.summary_key, confidence)

    def format(self, value: KpiValue) -> str:
        """``value`` as the report prints it: ``n/a`` when undefined, an interval in brackets."""
        if isinstance(value, Estimate):
            if not math.isfinite(value.value):
                return "n/a"
            text = f"{value.value:{self.fmt}}"
            if math.isfinite(value.low) and math.isfinite(value.high):
                text += f" [{value.low:{self.fmt}}, {value.high:{self.fmt}}]"
            return text
        return f"{value:{self.fmt}}" if math.isfinite(value) else "n/a"

    def reads(self, columns: Iterable[str]) -> list[str]:
        """The columns among ``columns`` this KPI aggregates."""
        return [c for c in columns if c == self.summary_key or _is_counted(c, self.summary_key)]


def point(value: KpiValue) -> float:
    """The point value of a KPI value (an interval's estimate)."""
    return value.value if isinstance(value, Estimate) else float(value)


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """A column of the episode table, or an all-NaN one where the records do not have it."""
    return df[name] if name in df else pd.Series(np.nan, index=df.index, dtype=float)


def _is_counted(name: str, key: str) -> bool:
    return key.endswith("*") and fnmatchcase(name, key) and name not in _NOT_COUNTS


#: Matches ``violations_*`` but is the env's per-episode rate, not a count of one kind.
_NOT_COUNTS = {"violations_per_1000_steps"}


def _numbers(values: pd.Series) -> np.ndarray:
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return array[np.isfinite(array)]


def _quantile(q: float) -> Callable[[pd.DataFrame, str, float], float]:
    def aggregate(rows: pd.DataFrame, key: str, confidence: float) -> float:
        array = _numbers(column(rows, key))
        return float(np.quantile(array, q)) if array.size else math.nan

    return aggregate


def _mean(rows: pd.DataFrame, key: str, confidence: float) -> float:
    array = _numbers(column(rows, key))
    return float(array.mean()) if array.size else math.nan


def _mean_interval(rows: pd.DataFrame, key: str, confidence: float) -> Estimate:
    return mean_interval(_numbers(column(rows, key)), confidence=confidence)


def _max(rows: pd.DataFrame, key: str, confidence: float) -> float:
    array = _numbers(column(rows, key))
    return float(array.max()) if array.size else math.nan


def _sum(rows: pd.DataFrame, key: str, confidence: float) -> int:
    return int(pd.to_numeric(column(rows, key), errors="coerce").fillna(0).sum())


def _count(rows: pd.DataFrame, key: str, confidence: float) -> int:
    return len(rows)


def _counts(rows: pd.DataFrame, key: str) -> pd.Series:
    """Per episode: the sum of the ``key`` columns, else its ``violation:*`` events."""
    counts = pd.Series(np.nan, index=rows.index, dtype=float)
    if kinds := [c for c in rows.columns if _is_counted(c, key)]:
        counts = rows[kinds].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1)
    return counts.fillna(pd.to_numeric(column(rows, "violation_events"), errors="coerce"))


def _pooled_per_1000_steps(rows: pd.DataFrame, key: str, confidence: float) -> float:
    counts = _counts(rows, key)
    known = counts.notna()
    steps = pd.to_numeric(column(rows, "steps"), errors="coerce")[known].sum()
    return 1000.0 * float(counts[known].sum()) / float(steps) if steps > 0 else math.nan


def _share_with_any(rows: pd.DataFrame, key: str, confidence: float) -> float:
    counts = _counts(rows, key).dropna()
    return float((counts > 0).mean()) if len(counts) else math.nan


_Aggregate = Callable[[pd.DataFrame, str, float], KpiValue]

#: ``KPI.aggregation`` -> function of (the cell's rows, ``summary_key``, confidence).
AGGREGATIONS: dict[str, _Aggregate] = {
    "median": _quantile(0.5),
    "p90": _quantile(0.9),
    "mean": _mean,
    "mean_ci": _mean_interval,  # with a percentile bootstrap interval
    "max": _max,
    "sum": _sum,
    "count": _count,  # episodes
    "pooled_per_1000_steps": _pooled_per_1000_steps,  # all counts / all steps x 1,000
    "share_with_any": _share_with_any,  # share of episodes with a count > 0
    # testbed.results.energy: pooled robot + compute energy, NaN where any part is unknown
    "per_good_part": energy.per_good_part,  # (robot J + compute J) / parts completed
    "compute_share": energy.compute_share,  # compute J / (robot J + compute J)
    "successes_per_kj": energy.successes_per_kj,  # successes / (robot + compute kJ)
    "cost_per_1000": energy.cost_per_1000_episodes,  # mean kWh x price x 1,000
}


def _ended_by(rows: pd.DataFrame) -> pd.Series:
    return column(rows, "ended_by").astype(str)


#: ``KPI.over`` -> the cell's episodes it keeps (``normal``: not ended on a policy fault).
EPISODES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "all": lambda rows: rows,
    "successful": lambda rows: rows[rows["success"].astype(bool)],
    "normal": lambda rows: rows[_ended_by(rows) != "fault"],
    "faulted": lambda rows: rows[_ended_by(rows) == "fault"],
}


class UnknownKPIError(KeyError):
    """A KPI name that is not registered; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Mapping[str, KPI]):
    """KPIs by name, in report order; checked when built.

    Raises:
        ValueError: On a duplicate name or column, an unknown aggregation or episode set, a bad
            format, or a chart whisker that names no registered KPI.
    """

    def __init__(self, kpis: Iterable[KPI]) -> None:
        listed = list(kpis)
        self._kpis = {k.name: k for k in listed}
        if problems := _problems(listed, self._kpis):
            raise ValueError("KPI registry: " + "; ".join(problems))

    def __getitem__(self, name: str) -> KPI:
        """The KPI called ``name``.

        Raises:
            UnknownKPIError: (a KeyError) naming the closest registered KPIs and all of them.
        """
        try:
            return self._kpis[name]
        except KeyError:
            raise UnknownKPIError(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kpis

    def __iter__(self) -> Iterator[str]:
        return iter(self._kpis)

    def __len__(self) -> int:
        return len(self._kpis)

    def unknown(self, name: str) -> str:
        """The message for a name that is not registered (with a did-you-mean)."""
        by_label = {k.column: k.name for k in self._kpis.values()}
        close = difflib.get_close_matches(name, [*self._kpis, *by_label], n=3, cutoff=0.6)
        close = list(dict.fromkeys(by_label.get(c, c) for c in close))
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        return f"unknown KPI {name!r}: {hint}known KPIs: {', '.join(self._kpis)}"


def _problems(kpis: list[KPI], by_name: dict[str, KPI]) -> list[str]:
    problems = []
    for what in ("name", "column"):
        values = [getattr(k, what) for k in kpis]
        problems += [
            f"duplicate {what} {v!r}" for v in dict.fromkeys(values) if values.count(v) > 1
        ]
    for k in kpis:
        if k.aggregation not in AGGREGATIONS:
            problems.append(
                f"{k.name}: aggregation {k.aggregation!r} is not one of {list(AGGREGATIONS)}"
            )
        if k.over not in EPISODES:
            problems.append(f"{k.name}: over {k.over!r} is not one of {list(EPISODES)}")
        if k.source not in (ENV, TESTBED) and not (isinstance(k.source, tuple) and k.source):
            problems.append(
                f"{k.name}: source {k.source!r}: expected {ENV!r}, {TESTBED!r} or env ids"
            )
        try:
            format(1 if k.fmt == "d" else 1.0, k.fmt)
        except ValueError:
            problems.append(f"{k.name}: bad format {k.fmt!r}")
        whisker = k.chart.whisker if k.chart else None
        if whisker not in (None, INTERVAL) and whisker not in by_name:
            problems.append(f"{k.name}: chart whisker {whisker!r} is not a KPI")
    return problems


# One entry per KPI, in the order of the report's KPI table. (Laid out by hand: a table.)
# fmt: off
KPIS = Registry([
    KPI(name="cycle_time_median_s", summary_key="cycle_time_s", column="cycle s median",
        unit="s per part", aggregation="median", over="successful", fmt=".2f",
        doc="median of the episodes' cycle time (sim seconds per sorted part) over the "
            "*successful* episodes",
        chart=Chart("Cycle time per part [s]\nbar: median over successes, whisker: p90",
                    whisker="cycle_time_p90_s")),
    KPI(name="cycle_time_p90_s", summary_key="cycle_time_s", column="cycle s p90",
        unit="s per part", aggregation="p90", over="successful", fmt=".2f",
        doc="90th percentile of the same cycle times (successful episodes)"),
    KPI(name="throughput_parts_per_h", summary_key="throughput_parts_per_h", column="parts/h",
        unit="parts per sim hour", aggregation="mean", over="normal", fmt=".1f",
        doc="mean over the episodes that ended normally", higher_is_better=True),
    KPI(name="energy_per_part_j", summary_key="energy_per_part_j", column="energy J/part",
        unit="J per sorted part", aggregation="mean_ci", over="all", fmt=".1f",
        doc="mean over the episodes that sorted a part, with a percentile bootstrap interval",
        chart=Chart("Energy per sorted part [J]\nbar: mean, whisker: 95% bootstrap interval",
                    whisker=INTERVAL)),
    KPI(name="violations_per_1000_steps", summary_key="violations_*", column="viol./1k steps",
        unit="per 1,000 steps", aggregation="pooled_per_1000_steps", over="normal", fmt=".2f",
        doc="pooled: all violations (TCP speed, contact force, keep-out and, with co-workers "
            "in the cell, separation, reduced speed and body-region force: the summary's "
            "`violations_<kind>` counts) / all steps x 1,000, over the episodes that did not "
            "end on a fault; an episode cut short without a metrics summary counts its "
            "`violation:*` events",
        chart=Chart("Safety violations per 1,000 steps\n(pooled over the cell's episodes)")),
    KPI(name="violation_share", summary_key="violations_*", column="episodes w/ viol.",
        unit="share of episodes", aggregation="share_with_any", over="normal", fmt=".0%",
        doc="share of those episodes with at least one violation"),
    KPI(name="insertion_time_median_s", summary_key="insertion_time_s",
        column="insertion s median", unit="s", aggregation="median", over="successful",
        fmt=".2f", source=("Testbed/PegInHole-v0",),
        doc="median sim time from the episode's start to the peg's insertion (>= 90% of the "
            "hole depth), over the *successful* episodes"),
    KPI(name="peak_wrist_force_n", summary_key="peak_wrist_force_n", column="wrist N peak",
        unit="N", aggregation="mean", over="normal", fmt=".1f",
        source=("Testbed/PegInHole-v0",),
        doc="mean of the episodes' peak wrist force (contact forces on the held peg)"),
    KPI(name="mean_wrist_force_n", summary_key="mean_wrist_force_n", column="wrist N mean",
        unit="N", aggregation="mean", over="normal", fmt=".1f",
        source=("Testbed/PegInHole-v0",),
        doc="mean of the episodes' mean wrist force over their steps in contact"),
    KPI(name="jams", summary_key="jams", column="jams", unit="count", aggregation="sum",
        over="normal", fmt="d", source=("Testbed/PegInHole-v0",),
        doc="stalls of >= 0.5 s with the held peg pushed with >= 5 N, not yet inserted"),
    KPI(name="cartons_placed_mean", summary_key="cartons_placed", column="cartons placed",
        unit="cartons", aggregation="mean", over="normal", fmt=".1f", higher_is_better=True,
        source=("Testbed/Palletize-v0",),
        doc="mean of the cartons within tolerance of their slots at the episode's end"),
    KPI(name="pattern_error_mm", summary_key="pattern_error_mm", column="pattern err mm",
        unit="mm", aggregation="mean", over="normal", fmt=".1f",
        source=("Testbed/Palletize-v0",),
        doc="mean of the episodes' mean horizontal distance of the released cartons from "
            "their slots"),
    KPI(name="cartons_toppled", summary_key="cartons_toppled", column="toppled cartons",
        unit="count", aggregation="sum", over="normal", fmt="d",
        source=("Testbed/Palletize-v0",),
        doc="cartons that came to rest tilted more than about 20 degrees (each ends its "
            "episode)"),
    KPI(name="latency_p50_ms", summary_key="latency_ms_p50", column="latency ms p50",
        unit="ms (wall clock)", aggregation="median", over="all", fmt=".2f", source=TESTBED,
        doc="median of the episodes' p50 policy latency",
        chart=Chart("Policy latency [ms]\nbar: median of episode p50, whisker: worst episode "
                    "p99", whisker="latency_p99_ms")),
    KPI(name="latency_p99_ms", summary_key="latency_ms_p99", column="latency ms p99",
        unit="ms (wall clock)", aggregation="max", over="all", fmt=".2f", source=TESTBED,
        doc="the worst episode's p99"),
    KPI(name="deadline_misses", summary_key="deadline_misses", column="deadline misses",
        unit="count", aggregation="sum", over="all", fmt="d", source=TESTBED,
        doc="missed policy deadlines; the robot held position and the episode went on"),
    KPI(name="invalid_actions", summary_key="invalid_actions", column="invalid actions",
        unit="count", aggregation="sum", over="all", fmt="d", source=TESTBED,
        doc="rejected actions; the robot held position and the episode went on"),
    KPI(name="faulted_episodes", summary_key="ended_by", column="faulted episodes",
        unit="count", aggregation="count", over="faulted", fmt="d", source=TESTBED,
        doc="episodes that ended on a policy fault (e.g. `PolicyUnavailableError`)"),
    KPI(name="compute_j_per_action", summary_key="compute_j_per_action",
        column="compute J/action", unit="J per action (policy compute)",
        aggregation="mean_ci", over="all", fmt=".3g", source=TESTBED,
        doc="mean over the episodes of the policy's compute energy / the actions of its "
            "measured calls, with a percentile bootstrap interval; measured where the policy "
            "ran (RAPL, NVML) or CPU time x `energy.watts_per_core`, its source in the "
            "report's Energy section; n/a when unknown (a server that does not report it)",
        chart=Chart("Policy compute per action [J]\nbar: mean, whisker: 95% bootstrap "
                    "interval", whisker=INTERVAL)),
    KPI(name="energy_per_good_part_j", summary_key="compute_j", column="J/good part",
        unit="J per completed part (robot + compute)", aggregation="per_good_part",
        over="normal", fmt=".1f", source=TESTBED,
        doc="pooled over the episodes that ended normally: (robot energy + policy compute "
            "energy) / parts completed; n/a when no part was completed or either energy is "
            "unknown",
        chart=Chart("Energy per good part [J]\nrobot + policy compute, pooled")),
    KPI(name="compute_share", summary_key="compute_j", column="compute share",
        unit="share of robot + compute energy", aggregation="compute_share", over="normal",
        fmt=".2%", source=TESTBED,
        doc="the policy's compute energy / (robot + compute energy), pooled; the robot's share "
            "is the rest"),
    KPI(name="successes_per_kj", summary_key="compute_j", column="successes/kJ",
        unit="successful episodes per kJ", aggregation="successes_per_kj", over="normal",
        fmt=".3g", higher_is_better=True, source=TESTBED,
        doc="successful episodes / (robot + compute energy in kJ), pooled (0 when every "
            "episode failed)"),
    KPI(name="cost_per_1000_episodes", summary_key="energy_price_per_kwh",
        column="cost/1k episodes", unit="`energy.currency` per 1,000 episodes",
        aggregation="cost_per_1000", over="normal", fmt=".3g", source=TESTBED,
        doc="mean robot + compute energy per episode in kWh x `energy.price_per_kwh` x 1,000; "
            "n/a when no price is configured"),
])
# fmt: on
