"""Batch-mode throughput: episodes/s of one trial worker with ``policy.mode=batch`` vs unary.

One ``testbed serve scripted:kr-changwon`` process on 127.0.0.1 (a remote policy, started once
and shared by both modes) serves the same trial: kr-changwon, ``batch_episodes`` episodes
capped at ``batch_max_steps`` steps, run in this process by `run_trial` with
``policy.mode=unary`` and with ``policy.mode=batch policy.batch_size=8``, each run in a fresh
folder, the two alternated ``batch_repeats`` times. Wall time covers what the trial worker does
(envs, handshake, episodes, records), not Hydra's start-up. Goal: batch >= 1.3x unary.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from testbed.bench.figures import BenchProfile, Figure, Progress, alternate, median

GOAL_RATIO = 1.3
BATCH_SIZE = 8
SITE, POLICY = "kr-changwon", "scripted:kr-changwon"


class BatchBenchError(RuntimeError):
    """A benchmark trial failed or recorded fewer episodes than planned."""


def _trial_rate(profile: BenchProfile, address: str, mode: str) -> float:
    """Episodes per wall second of one fresh trial in ``mode`` against ``address``."""
    from testbed.campaign.plan import plan_campaign
    from testbed.campaign.trial import run_trial

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        (trial,) = plan_campaign([
            f"site={SITE}", "policy=remote", "policy.name=bench", f"policy.home_site={SITE}",
            f"policy.address={address}", f"policy.mode={mode}",
            f"policy.batch_size={BATCH_SIZE}", f"campaign.episodes={profile.batch_episodes}",
            f"task.max_steps={profile.batch_max_steps}", "campaign.progress=false",
            "campaign.report=false", f"campaign.dir={folder}",
        ])  # fmt: skip
        start = time.perf_counter()
        outcome = run_trial(trial.config, Path(folder) / trial.config.trial_name)
        wall = time.perf_counter() - start
    if outcome.status != "done" or outcome.episodes_run != profile.batch_episodes:
        raise BatchBenchError(
            f"the {mode} benchmark trial ended {outcome.status} after {outcome.episodes_run} "
            f"of {profile.batch_episodes} episodes: {outcome.reason}"
        )
    return outcome.episodes_run / wall


def run(profile: BenchProfile, progress: Progress) -> tuple[list[Figure], list[str]]:
    """The batch figures: one worker's episodes/s in unary and batch mode, and their ratio.

    The ratio is the median of the per-pair ratios (pairs measured back to back see about the
    same load on a shared machine).
    """
    from testbed.campaign.managed import ManagedServer

    rates: dict[str, list[float]] = {"unary": [], "batch": []}

    def measure(mode: str, address: str) -> float:
        progress(f"campaign: {profile.batch_episodes} episodes in one worker, {mode} mode, "
                 f"run {len(rates[mode]) + 1}/{profile.batch_repeats}")  # fmt: skip
        rates[mode].append(_trial_rate(profile, address, mode))
        return rates[mode][-1]

    with tempfile.TemporaryDirectory(prefix="bench-batch-server-") as logs:
        with ManagedServer(POLICY, Path(logs) / "policy_server.log") as server:
            address = server.start()
            unary, batch = alternate(
                lambda: measure("unary", address),
                lambda: measure("batch", address),
                profile.batch_repeats,
            )
    ratio = median([b / u for u, b in zip(unary, batch, strict=True)])
    details = {
        "site": SITE,
        "episodes": profile.batch_episodes,
        "max_steps": profile.batch_max_steps,
        "policy": f"remote {POLICY} (testbed serve on 127.0.0.1)",
    }
    figures = [
        Figure("campaign", "1 worker, unary", median(unary), "episodes/s",
               details={**details, "rates_episodes_per_s": unary}),
        Figure("campaign", f"1 worker, batch x{BATCH_SIZE}", median(batch), "episodes/s",
               reference=median(unary), reference_name="1 worker, unary", ratio=ratio,
               ratio_name="vs unary", goal=f">= {GOAL_RATIO}x", met=ratio >= GOAL_RATIO,
               details={**details, "batch_size": BATCH_SIZE, "rates_episodes_per_s": batch}),
    ]  # fmt: skip
    return figures, []
