"""The site-by-site predictivity heatmap (matplotlib, no pyplot; one PNG written atomically).

Two panels over the same grid: rows are the predicting site, columns the reference site. Left:
MMRV (0 is best, so the colour map runs from dark at 1 to light at 0); right: Kendall tau
(-1 to 1). Each cell shows the point estimate over its bootstrap interval; an undefined value
is grey and says ``n/a`` and why (never a number); a reference site where every policy has the
same rate is grey too (nothing to rank); the best predictor of each reference site is outlined.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from testbed.atomic import atomic_write
from testbed.results.plots import DPI, LABEL_PT
from testbed.results.predictivity import PairPredictivity, Predictivity
from testbed.results.statistics import Estimate

EDGE = "#d62728"


def predictivity_heatmap(result: Predictivity, path: Path) -> Path:
    """Write the MMRV and Kendall tau heatmaps of ``result`` to ``path``; returns the path."""
    n = len(result.sites)
    fig = Figure(figsize=(2 * (2.2 + 1.9 * n), 1.8 + 1.1 * n))
    left, right = fig.subplots(1, 2)
    _panel(left, result, "mmrv", "MMRV (lower is better)", (0.0, 1.0), "viridis_r")
    _panel(right, result, "kendall", "Kendall tau (higher is better)", (-1.0, 1.0), "cividis")
    pct = round(result.confidence * 100)
    fig.suptitle(
        f"Does one site predict another? Success-rate rankings, bootstrap {pct}% intervals\n"
        "(outlined: the best predictor of each reference site; grey: undefined)",
        fontsize=LABEL_PT,
    )
    fig.tight_layout()
    return atomic_write(
        Path(path),
        lambda file: fig.savefig(file, format="png", dpi=DPI, metadata={"Software": None}),
    )


def _panel(
    ax: Axes,
    result: Predictivity,
    name: str,
    title: str,
    limits: tuple[float, float],
    cmap: str,
) -> None:
    sites = result.sites
    values = np.full((len(sites), len(sites)), np.nan)
    for i, predictor in enumerate(sites):
        for j, reference in enumerate(sites):
            if (pair := result.pair(predictor, reference)) is not None and pair.reference_ranked:
                values[i, j] = _of(pair, name).value
    colormap = colormaps[cmap].with_extremes(bad="#dddddd")
    image = ax.imshow(values, cmap=colormap, vmin=limits[0], vmax=limits[1], aspect="auto")
    for i, predictor in enumerate(sites):
        for j, reference in enumerate(sites):
            pair = result.pair(predictor, reference)
            shade = float(np.asarray(image.norm(values[i, j])))
            dark = math.isfinite(shade) and (shade > 0.45 if cmap.endswith("_r") else shade < 0.55)
            text = "same site" if pair is None else _label(pair, _of(pair, name))
            colour = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=LABEL_PT - 1, color=colour)
            if predictor in result.best.get(reference, ()):
                corner = (j - 0.46, i - 0.46)
                ax.add_patch(Rectangle(corner, 0.92, 0.92, fill=False, edgecolor=EDGE, lw=2.5))
    ax.set_xticks(range(len(sites)), sites)
    ax.set_yticks(range(len(sites)), sites)
    ax.set_xlabel("reference site (predicted)")
    ax.set_ylabel("predicting site")
    ax.tick_params(length=0, labelsize=LABEL_PT - 1)
    ax.set_title(title, fontsize=LABEL_PT)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def _of(pair: PairPredictivity, name: str) -> Estimate:
    estimate: Estimate = getattr(pair, name)
    return estimate


def _label(pair: PairPredictivity, estimate: Estimate) -> str:
    """Point over interval; ``n/a`` and the reason for an undefined value.

    A reference site whose rates are all equal has nothing to rank: its MMRV (0) is shown
    on grey with that said, not coloured as a perfect prediction.
    """
    if len(pair.policies) < 2:
        return "n/a\n< 2 common policies"
    if math.isnan(estimate.value):
        return "n/a\nall rates equal"
    text = f"{estimate.value:.2f}"
    if not math.isnan(estimate.low):
        text += f"\n[{estimate.low:.2f}, {estimate.high:.2f}]"
    return text if pair.reference_ranked else f"{text}\nnothing to rank"
