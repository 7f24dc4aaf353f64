"""The learning curve PNG that ``testbed train`` writes beside a model.

It plots what the run logged: ``bc.csv`` (behaviour cloning: training and validation loss, and
the home-site success rate at each evaluation, against gradient steps) and ``eval.csv`` (the
home-site evaluations of reinforcement learning, against env steps). One panel per file present.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CURVE_FILE = "learning_curve.png"


def plot_learning_curve(out_dir: Path, title: str = "") -> Path | None:
    """Write ``out_dir/learning_curve.png``; None (nothing written) if no log is there."""
    panels = [name for name in ("bc.csv", "eval.csv") if _rows(out_dir / name).size]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        if name == "bc.csv":
            _plot_bc(axis, _rows(out_dir / name))
        else:
            _plot_rl(axis, _rows(out_dir / name))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = out_dir / CURVE_FILE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _rows(path: Path) -> np.ndarray:
    """The CSV's rows as a structured array (empty if the file is missing or has no row)."""
    if not path.is_file():
        return np.empty(0)
    rows = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return rows if rows.size else np.empty(0)


def _plot_bc(axis: Axes, rows: np.ndarray) -> None:
    step = rows["gradient_step"]
    axis.semilogy(step, rows["train_loss"], "-", label="train loss (MSE)")
    if np.isfinite(rows["validation_loss"]).any():
        axis.semilogy(step, rows["validation_loss"], "-", label="validation loss (held-out)")
    axis.set_xlabel("gradient step")
    axis.set_title("behaviour cloning")
    rate = rows["success_rate"]
    evaluated = np.isfinite(rate)
    if evaluated.any():
        twin = axis.twinx()
        twin.plot(
            step[evaluated], rate[evaluated], "^-", color="tab:green", label="success at home"
        )
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("success rate")
        twin.legend(loc="center right")
    axis.legend(loc="upper right")


def _plot_rl(axis: Axes, rows: np.ndarray) -> None:
    axis.plot(rows["timesteps"], rows["success_rate"], "o-", color="tab:green")
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("env steps")
    axis.set_ylabel("success rate at home")
    axis.set_title("reinforcement learning evaluations")
