"""rliable's run-level comparisons: probability of improvement and performance profiles.

Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021), as the ``rliable`` package computes them, with each (task, site) as one of
rliable's tasks. A run is a training seed (score: its success rate there) when every policy has
two or more training seeds at every (task, site) it ran, otherwise an episode (score: 1 or 0).

- `probability_of_improvement`: ``P(X > Y)`` at one task is the Mann-Whitney ``U / (N M)`` of
  X's runs against Y's (a tie counts a half); `RunScores.improvement` averages it over the tasks
  both policies ran (``rliable.metrics.probability_of_improvement``).
- `RunScores.profile`: the fraction of a policy's runs scoring above ``tau``, averaged over its
  tasks (``rliable.library.run_score_deviation``; the same when tasks have equal run counts).

Intervals are rliable's stratified independent bootstrap: each policy's runs are resampled with
replacement within each task, independently of the other policy. Scores take few distinct
values, so a policy's runs at a task are kept as the shares of those values; resampling ``N``
runs with replacement is then a multinomial draw of ``N`` counts, and ``U / (N M)`` of two
samples is ``q_x K q_y`` with ``K[a, b] = [v_a > v_b] + 0.5 [v_a = v_b]``. A policy's resamples
are drawn once and shared by every comparison it is in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from testbed.results.predictivity import percentile_estimate
from testbed.results.statistics import Estimate

SEED_UNIT, EPISODE_UNIT = "training seed", "episode"

Task = tuple[str, str]


@dataclass(frozen=True)
class RunScores:
    """Every policy's runs per (task, site), as shares of the distinct scores there.

    Attributes:
        unit: What a run is: ``training seed`` or ``episode``.
        values: Task -> the distinct scores of all policies' runs there, ascending.
        observed: ``(policy, task)`` -> share of its runs at each value.
        resampled: ``(policy, task)`` -> ``(resamples, values)`` shares after resampling.
        confidence: Confidence level of the intervals.
    """

    unit: str
    values: dict[Task, np.ndarray]
    observed: dict[tuple[str, Task], np.ndarray]
    resampled: dict[tuple[str, Task], np.ndarray]
    confidence: float = 0.95

    def tasks(self, policy: str) -> list[Task]:
        """The (task, site) pairs where ``policy`` has runs."""
        return [task for p, task in self.observed if p == policy]

    def improvement(self, x: str, y: str) -> Estimate | None:
        """``P(x > y)`` averaged over the tasks both ran; None if they share none."""
        shared = [t for t in self.tasks(x) if (y, t) in self.observed]
        if not shared:
            return None
        kernels = {t: _kernel(self.values[t]) for t in shared}
        point = np.mean(
            [self.observed[(x, t)] @ k @ self.observed[(y, t)] for t, k in kernels.items()]
        )
        drawn = [
            np.einsum("rv,vw,rw->r", self.resampled[(x, t)], k, self.resampled[(y, t)])
            for t, k in kernels.items()
        ]
        return percentile_estimate(point, np.mean(drawn, axis=0), self.confidence)

    def profile(self, policy: str, tau: float) -> Estimate:
        """Fraction of ``policy``'s runs with a score above ``tau``, averaged over its tasks."""
        tasks = self.tasks(policy)
        if not tasks:
            return Estimate.undefined()
        above = [self.values[t] > tau for t in tasks]
        point = np.mean([self.observed[(policy, t)] @ a for t, a in zip(tasks, above, strict=True)])
        drawn = [self.resampled[(policy, t)] @ a for t, a in zip(tasks, above, strict=True)]
        return percentile_estimate(point, np.mean(drawn, axis=0), self.confidence)


def _kernel(values: np.ndarray) -> np.ndarray:
    """``K[a, b]``: 1 where value a beats value b, 0.5 where they tie."""
    return (values[:, None] > values[None, :]) + 0.5 * (values[:, None] == values[None, :])


def run_scores(
    df: pd.DataFrame, n_resamples: int, rng: np.random.Generator, confidence: float = 0.95
) -> RunScores:
    """The runs of every policy of ``df`` (columns policy, task, site, policy_seed, success)."""
    keys = ["policy", "task", "site"]
    seeds = df.groupby(keys)["policy_seed"].nunique()
    unit = SEED_UNIT if len(seeds) and seeds.min() >= 2 else EPISODE_UNIT
    scores: dict[tuple[str, Task], np.ndarray] = {}
    for (policy, task, site), group in df.groupby(keys):
        runs = group.groupby("policy_seed")["success"].mean() if unit == SEED_UNIT else None
        chosen = group["success"] if runs is None else runs
        scores[(str(policy), (str(task), str(site)))] = chosen.to_numpy(np.float64)
    values: dict[Task, np.ndarray] = {}
    for (_, task), runs_here in scores.items():
        values[task] = np.union1d(values.get(task, np.empty(0)), runs_here)
    observed, resampled = {}, {}
    for key, runs_here in scores.items():
        counts = np.array([(runs_here == v).sum() for v in values[key[1]]], dtype=np.float64)
        share = counts / runs_here.size
        observed[key] = share
        drawn = rng.multinomial(runs_here.size, share, size=n_resamples)
        resampled[key] = drawn / runs_here.size
    return RunScores(unit, values, observed, resampled, confidence)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney ``U / (N M)`` of the samples ``x`` and ``y`` (a tie counts a half).

    The plain-sample form, from the rank sum of ``x`` in the pooled sample.
    """
    xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if xa.size == 0 or ya.size == 0:
        return math.nan
    ranks = stats.rankdata(np.concatenate([xa, ya]))
    u = ranks[: xa.size].sum() - xa.size * (xa.size + 1) / 2
    return float(u / (xa.size * ya.size))
