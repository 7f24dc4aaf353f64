"""Campaign throughput: episodes per second with 1 and 2 trial workers, in one run.

Runs the same fixed campaign (the scripted controllers of kr-changwon and jp-nagoya over gRPC,
managed policy servers, one trial per policy and site) with the joblib launcher at
``campaign.workers=1`` and ``=2``, each in a fresh folder, as ``testbed run`` subprocesses.
Wall time includes everything a user waits for: Hydra start-up, policy servers, simulation,
recording; not the report. Goal (DESIGN.md): 2 workers >= 1.85x the episodes/s of 1 worker
(needs two free cores: on a shared machine other jobs take their share).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.bench.figures import BenchProfile, Figure, Progress, alternate, median

GOAL_RATIO = 1.85
"""DESIGN.md: 2 workers at least 1.85x the episodes per second of 1 worker."""
POLICIES = {"kr-changwon": "scripted_kr", "jp-nagoya": "scripted_jp", "us-austin": "scripted_us"}


class CampaignBenchError(RuntimeError):
    """The benchmark campaign failed or recorded fewer episodes than planned."""


def campaign_args(profile: BenchProfile) -> list[str]:
    """Hydra arguments of the fixed benchmark campaign (without workers and folder).

    ``site`` comes first, so Hydra's sweep varies the policy fastest: the trials go out site by
    site and each of two workers gets one trial per site, a faster (kr-changwon) and a slower
    (jp-nagoya) one, as one orders a sweep for an even load. (Policy first would hand one
    worker both jp-nagoya trials and leave the other idle for the last ~20% of the run.)
    """
    policies = ",".join(POLICIES[s] for s in profile.campaign_sites)
    return ["-m", f"site={','.join(profile.campaign_sites)}", f"policy={policies}",
            f"campaign.episodes={profile.campaign_episodes}",
            f"task.max_steps={profile.campaign_max_steps}",
            "campaign.report=false", "campaign.progress=false",
            "hydra/launcher=local"]  # fmt: skip


def expected_episodes(profile: BenchProfile) -> int:
    """Episodes the fixed campaign records (every policy at every site)."""
    return len(profile.campaign_sites) ** 2 * profile.campaign_episodes


@dataclass(frozen=True)
class CampaignRun:
    """One run of the benchmark campaign.

    Attributes:
        episodes: Episodes recorded.
        wall_s: Wall time of ``testbed run``.
        cpu_s: CPU time of ``testbed run`` and every process it started (workers, servers).
        machine_busy_cores: Cores the whole machine kept busy on average meanwhile (Linux;
            NaN elsewhere): compared with ``cpu_s / wall_s`` it shows how much other jobs took.
    """

    episodes: int
    wall_s: float
    cpu_s: float
    machine_busy_cores: float

    @property
    def rate(self) -> float:
        """Episodes per wall second."""
        return self.episodes / self.wall_s

    @property
    def parallelism(self) -> float:
        """Cores the campaign kept busy on average."""
        return self.cpu_s / self.wall_s


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_campaign(profile: BenchProfile, workers: int) -> CampaignRun:
    """Run the campaign with ``workers`` parallel trials and account for its time.

    Raises:
        CampaignBenchError: If the campaign fails or records an unexpected number of episodes.
    """
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as folder:
        args = [*campaign_args(profile), f"campaign.workers={workers}",
                f"campaign.dir={folder}/campaign"]  # fmt: skip
        cpu, ticks, start = _children_cpu_s(), _machine_ticks(), time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "testbed", "run", *args],
            cwd=folder, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        wall, cpu = time.perf_counter() - start, _children_cpu_s() - cpu
        busy = _busy_cores(ticks, _machine_ticks())
        if result.returncode != 0:
            raise CampaignBenchError(
                f"the benchmark campaign failed (workers={workers}):\n{result.stderr[-3000:]}"
            )
        recorded = len(list(Path(folder, "campaign").glob("*/episodes/ep-*.npz")))
    if recorded != expected_episodes(profile):
        raise CampaignBenchError(
            f"the benchmark campaign recorded {recorded} episodes, expected "
            f"{expected_episodes(profile)} (workers={workers})"
        )
    return CampaignRun(recorded, wall, cpu, busy)


def _busy_cores(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    if before is None or after is None or after[1] == before[1]:
        return float("nan")
    share = (after[0] - before[0]) / (after[1] - before[1])
    return share * (os.cpu_count() or 1)


def run(profile: BenchProfile, progress: Progress) -> tuple[list[Figure], list[str]]:
    """The campaign section: episodes/s with 1 and 2 workers, and their ratio.

    The two run ``campaign_repeats`` times each, alternating which goes first; the figures are
    the median runs and the ratio is the median of the per-pair ratios (a shared machine's
    load comes and goes: pairs measured back to back see about the same).
    """
    episodes = expected_episodes(profile)
    runs: dict[int, list[CampaignRun]] = {1: [], 2: []}

    def measure(workers: int) -> float:
        progress(f"campaign: {episodes} episodes with {workers} worker(s), "
                 f"run {len(runs[workers]) + 1}/{profile.campaign_repeats}")  # fmt: skip
        runs[workers].append(run_campaign(profile, workers))
        return runs[workers][-1].rate

    ones, twos = alternate(lambda: measure(1), lambda: measure(2), profile.campaign_repeats)
    ratio = median([b / a for a, b in zip(ones, twos, strict=True)])
    one, two = _median_run(runs[1]), _median_run(runs[2])
    figures = [
        Figure("campaign", "1 worker", one.rate, "episodes/s", details=_details(profile, runs[1])),
        Figure("campaign", "2 workers", two.rate, "episodes/s", reference=one.rate,
               reference_name="1 worker", ratio=ratio, ratio_name="vs 1 worker",
               goal=f">= {GOAL_RATIO}x", met=ratio >= GOAL_RATIO,
               details=_details(profile, runs[2])),
    ]  # fmt: skip
    others = two.machine_busy_cores - two.parallelism
    notes = []
    if ratio < GOAL_RATIO and others > 0.25:
        notes.append(
            f"campaign: other processes kept {others:.1f} of {os.cpu_count()} cores busy during "
            f"the 2-worker run (the campaign itself {two.parallelism:.1f}): too few free cores "
            f"for {GOAL_RATIO}x"
        )
    return figures, notes


def _median_run(runs: list[CampaignRun]) -> CampaignRun:
    return sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]


def _details(profile: BenchProfile, runs: list[CampaignRun]) -> dict[str, object]:
    middle = _median_run(runs)
    return {
        "trials": len(profile.campaign_sites) ** 2,
        "episodes": middle.episodes,
        "max_steps": profile.campaign_max_steps,
        "wall_s": middle.wall_s,
        "cpu_s": middle.cpu_s,
        "campaign_busy_cores": middle.parallelism,
        "machine_busy_cores": middle.machine_busy_cores,
        "rates_episodes_per_s": [r.rate for r in runs],
    }
