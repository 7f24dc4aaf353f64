"""Batch-mode throughput: episodes/s of one trial worker with ``policy.mode=batch`` vs unary.

One ``testbed serve scripted:kr-changwon`` process on 127.0.0.1 (a remote policy, started once
and shared by both modes) serves the same trial: kr-changwon, ``batch_episodes`` episodes
capped at ``batch_max_steps`` steps, run in this process by `run_trial` with
``policy.mode=unary`` and with ``policy.mode=batch policy.batch_size=8``, each run in a fresh
folder, the two alternated ``batch_repeats`` times. Wall time covers what the trial worker does
(envs, handshake, episodes, records), not Hydra's start-up. Goal: batch >= 1.3x unary.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

from testbed.bench.figures import BenchProfile, Figure, Progress, alternate, median

GOAL_RATIO = 1.3
BATCH_SIZE = 8
SITE, POLICY = "kr-changwon", "scripted:kr-changwon"


class BatchBenchError(RuntimeError):
    """A benchmark trial failed or recorded fewer episodes than planned."""


def _server_cpu_s(pid: int | None) -> float:
    """CPU seconds the process ``pid`` has used (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _trial_rate(
    profile: BenchProfile, address: str, mode: str, server_pid: int | None
) -> tuple[float, float]:
    """One fresh trial in ``mode`` against ``address``: (episodes per wall second, CPU s).

    The CPU seconds are the worker process's and the policy server's, per episode.
    """
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
        start, cpu = time.perf_counter(), time.process_time() + _server_cpu_s(server_pid)
        outcome = run_trial(trial.config, Path(folder) / trial.config.trial_name)
        wall = time.perf_counter() - start
        cpu = time.process_time() + _server_cpu_s(server_pid) - cpu
    if outcome.status != "done" or outcome.episodes_run != profile.batch_episodes:
        raise BatchBenchError(
            f"the {mode} benchmark trial ended {outcome.status} after {outcome.episodes_run} "
            f"of {profile.batch_episodes} episodes: {outcome.reason}"
        )
    return outcome.episodes_run / wall, cpu / outcome.episodes_run


def run(profile: BenchProfile, progress: Progress) -> tuple[list[Figure], list[str]]:
    """The batch figures: one worker's episodes/s in unary and batch mode, and their ratio.

    The ratio is the median of the per-pair ratios (pairs measured back to back see about the
    same load on a shared machine).
    """
    from testbed.campaign.managed import ManagedServer

    rates: dict[str, list[float]] = {"unary": [], "batch": []}
    cpu: dict[str, list[float]] = {"unary": [], "batch": []}

    def measure(mode: str, address: str, pid: int | None) -> float:
        progress(f"campaign: {profile.batch_episodes} episodes in one worker, {mode} mode, "
                 f"run {len(rates[mode]) + 1}/{profile.batch_repeats}")  # fmt: skip
        rate, cpu_s = _trial_rate(profile, address, mode, pid)
        rates[mode].append(rate)
        cpu[mode].append(cpu_s)
        return rate

    with tempfile.TemporaryDirectory(prefix="bench-batch-server-") as logs:
        with ManagedServer(POLICY, Path(logs) / "policy_server.log") as server:
            address = server.start()
            # A first short trial loads the site, Hydra and the server's code paths, so the
            # first measured run does not pay for what later ones find cached.
            warm = dataclasses.replace(profile, batch_episodes=1, batch_max_steps=5)
            _trial_rate(warm, address, "unary", server.pid)
            unary, batch = alternate(
                lambda: measure("unary", address, server.pid),
                lambda: measure("batch", address, server.pid),
                profile.batch_repeats,
            )
    ratio = median([b / u for u, b in zip(unary, batch, strict=True)])
    details = {
        "site": SITE,
        "episodes": profile.batch_episodes,
        "max_steps": profile.batch_max_steps,
        "policy": f"remote {POLICY} (testbed serve on 127.0.0.1)",
        # policy.observation_form auto: the SDK server packs, so both modes send packed steps
        "observations": "packed",
    }
    figures = [
        Figure("campaign", "1 worker, unary", median(unary), "episodes/s",
               details={**details, "rates_episodes_per_s": unary,
                        "cpu_s_per_episode": cpu["unary"]}),
        Figure("campaign", f"1 worker, batch x{BATCH_SIZE}", median(batch), "episodes/s",
               reference=median(unary), reference_name="1 worker, unary", ratio=ratio,
               ratio_name="vs unary", goal=f">= {GOAL_RATIO}x", met=ratio >= GOAL_RATIO,
               details={**details, "batch_size": BATCH_SIZE, "rates_episodes_per_s": batch,
                        "cpu_s_per_episode": cpu["batch"]}),
    ]  # fmt: skip
    cpu_ratio = median(cpu["unary"]) / median(cpu["batch"])
    notes = [
        f"campaign: batch x{BATCH_SIZE} vs unary: worker + policy server CPU per episode "
        f"{median(cpu['batch']):.2f} s vs {median(cpu['unary']):.2f} s (unary / batch "
        f"{cpu_ratio:.2f}x); "
        f"the wall-time ratio {ratio:.2f}x also depends on the cores other jobs leave free"
    ]
    return figures, notes
