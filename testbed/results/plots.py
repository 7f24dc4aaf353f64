"""Figures of a `TransferReport`: matrix heatmaps and KPI bar charts (matplotlib).

The bar charts are those of the KPI registry (`testbed.results.kpis.KPIS`): one panel per KPI with a
`Chart`, two panels a row.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no global backend or
figure registry is touched, so it works without a display and next to other matplotlib users.

Colour maps are perceptually uniform and colour-blind safe (viridis, cividis); home-site cells
are outlined in the heatmaps and hatched in the bar charts. Every function writes one PNG
atomically (`testbed.atomic`: a killed writer never leaves a partial PNG) and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from testbed.atomic import atomic_write
from testbed.results.evaluator import MatrixCell, TransferReport
from testbed.results.kpis import INTERVAL, KPI, KPIS, point
from testbed.results.statistics import Estimate

DPI = 120
#: Heatmap text size: readable when the report shows the figure 720 px wide (a phone).
LABEL_PT = 11
HOME_EDGE = "#d62728"


def write_plots(report: TransferReport, out_dir: Path) -> list[Path]:
    """Write every figure of ``report`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        success_heatmap(report, out / "success_matrix.png"),
        retention_heatmap(report, out / "retention_matrix.png"),
        kpi_charts(report, out / "kpis.png"),
    ]


def success_heatmap(report: TransferReport, path: Path) -> Path:
    """Heatmap of the success rate with its Wilson interval and episode count in each cell."""
    pct = round(report.confidence * 100)
    return _heatmap(
        report,
        path,
        estimate=lambda c: c.success,
        label=lambda c: f"{c.success.format()}\n{c.successes}/{c.episodes}",
        title=f"Success rate (success_at_end), Wilson {pct}% interval",
        colorbar="success rate",
        limits=(0.0, 1.0),
        cmap="viridis",
    )


def retention_heatmap(report: TransferReport, path: Path) -> Path:
    """Heatmap of retention (success at target / success at home) with its bootstrap interval."""
    values = [c.retention.value for c in report.cells.values()]
    finite = [v for v in values if math.isfinite(v)]
    pct = round(report.confidence * 100)
    return _heatmap(
        report,
        path,
        estimate=lambda c: c.retention,
        label=lambda c: c.retention.format(),
        title=f"Retention = p(target) / p(home), paired bootstrap {pct}% interval",
        colorbar="retention",
        limits=(0.0, max([1.0, *finite])),
        cmap="cividis",
    )


def _heatmap(
    report: TransferReport,
    path: Path,
    *,
    estimate: Callable[[MatrixCell], Estimate],
    label: Callable[[MatrixCell], str],
    title: str,
    colorbar: str,
    limits: tuple[float, float],
    cmap: str,
) -> Path:
    rows, cols = len(report.policies), len(report.sites)
    matrix = np.full((rows, cols), np.nan)
    fig = Figure(figsize=(2.4 + 2.3 * cols, 1.4 + 1.0 * rows))
    ax = fig.subplots()
    colormap = colormaps[cmap].with_extremes(bad="#dddddd")
    for i, policy in enumerate(report.policies):
        for j, site in enumerate(report.sites):
            cell = report.cell(policy, site)
            if cell is not None:
                matrix[i, j] = estimate(cell).value
    image = ax.imshow(matrix, cmap=colormap, vmin=limits[0], vmax=limits[1], aspect="auto")
    for i, policy in enumerate(report.policies):
        for j, site in enumerate(report.sites):
            _annotate(
                ax,
                report.cell(policy, site),
                label,
                i,
                j,
                float(np.asarray(image.norm(matrix[i, j]))),
            )
    _label_axes(ax, report)
    fig.colorbar(image, ax=ax, label=colorbar, fraction=0.046, pad=0.04)
    ax.set_title(
        f"{title}\n(outlined: the policy's home site; grey: not evaluated)", fontsize=LABEL_PT
    )
    return _save(fig, path)


def _annotate(
    ax: Axes,
    cell: MatrixCell | None,
    label: Callable[[MatrixCell], str],
    i: int,
    j: int,
    shade: float,
) -> None:
    text = "not run" if cell is None else label(cell)
    dark = cell is not None and math.isfinite(shade) and shade < 0.55
    ax.text(
        j, i, text, ha="center", va="center", fontsize=LABEL_PT, color="white" if dark else "black"
    )
    if cell is not None and cell.is_home:
        ax.add_patch(
            Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor=HOME_EDGE, lw=2.5)
        )


def _label_axes(ax: Axes, report: TransferReport) -> None:
    ax.set_xticks(range(len(report.sites)), report.sites)
    ax.set_yticks(
        range(len(report.policies)),
        [f"{p}\n(home {report.home_sites[p]})" for p in report.policies],
    )
    ax.set_xlabel("target site")
    ax.set_ylabel("policy (grouped by home site)")
    ax.tick_params(length=0, labelsize=LABEL_PT)
    homes = [report.home_sites[p] for p in report.policies]
    for i in range(1, len(homes)):
        if homes[i] != homes[i - 1]:
            ax.axhline(i - 0.5, color="white", lw=3)


def kpi_charts(report: TransferReport, path: Path) -> Path:
    """Grouped bar charts (policy groups, one bar per target site) of the KPIs with a `Chart`."""
    charted = [KPIS[name] for name in report.kpi_names if KPIS[name].chart is not None]
    rows = math.ceil(len(charted) / 2)
    width = max(9.0, 1.6 + 1.3 * len(report.policies) * max(1, len(report.sites)) / 2)
    fig = Figure(figsize=(width, 3.75 * rows))
    axes = list(fig.subplots(rows, 2, squeeze=False).flat)
    colors = colormaps["viridis"](np.linspace(0.1, 0.85, max(1, len(report.sites))))
    for ax, kpi in zip(axes, charted, strict=False):
        _bars(ax, report, kpi, colors)
    for ax in axes[len(charted) :]:
        ax.set_visible(False)
    handles = [Patch(color=colors[k], label=s) for k, s in enumerate(report.sites)]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="home site"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), title="target site")
    fig.suptitle("KPIs per policy and target site")
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    return _save(fig, path, tight=False)


def _whisker(kpi: KPI, cell: MatrixCell) -> tuple[float, float]:
    """(below, above) the bar: the KPI's interval, or up to the KPI its chart names."""
    whisker = kpi.chart.whisker if kpi.chart else None
    value = cell.kpi(kpi.name)
    if whisker == INTERVAL and isinstance(value, Estimate):
        return value.value - value.low, value.high - value.value
    if whisker is None or whisker == INTERVAL:
        return 0.0, 0.0
    return 0.0, point(cell.kpi(whisker)) - point(value)


def _bars(ax: Axes, report: TransferReport, kpi: KPI, colors: np.ndarray) -> None:
    assert kpi.chart is not None
    n_sites = max(1, len(report.sites))
    width = 0.8 / n_sites
    for k, site in enumerate(report.sites):
        cells = [report.cell(p, site) for p in report.policies]
        x = np.arange(len(report.policies)) + (k - (n_sites - 1) / 2) * width
        heights = [point(c.kpi(kpi.name)) if c else math.nan for c in cells]
        errors = np.array([_error(kpi, c) for c in cells]).T if kpi.chart.whisker else None
        bars = ax.bar(x, heights, width, color=colors[k], yerr=errors, capsize=3, ecolor="#333")
        for bar, cell, height in zip(bars, cells, heights, strict=True):
            if not math.isfinite(height):
                ax.text(bar.get_x() + width / 2, 0, "n/a", ha="center", va="bottom", fontsize=7)
            elif cell is not None and cell.is_home:
                bar.set_hatch("//")
                bar.set_edgecolor("black")
    ax.set_xticks(range(len(report.policies)), report.policies, rotation=20, ha="right")
    ax.set_title(kpi.chart.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _error(kpi: KPI, cell: MatrixCell | None) -> tuple[float, float]:
    if cell is None:
        return 0.0, 0.0
    low, high = _whisker(kpi, cell)
    return max(0.0, _finite(low)), max(0.0, _finite(high))


def _save(fig: Figure, path: Path, *, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    return atomic_write(
        Path(path),
        lambda file: fig.savefig(file, format="png", dpi=DPI, metadata={"Software": None}),
    )
