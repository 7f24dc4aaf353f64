"""Records every benchmark shares: one measured `Figure`, the run's `BenchProfile`, timing helpers.

A leaf module: the benchmark modules and the report import it, it imports none of them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

#: Sections in the order they run and print; ``testbed bench --only`` picks among them.
SECTIONS = ("env", "link", "campaign", "replay", "memory", "camera")

#: The env the benchmarks step, and the episode seed they use.
ENV_ID = "Testbed/ConveyorSort-v0"
SEED = 7

#: Receives one line of progress ("env: kr-changwon, recording calls").
Progress = Callable[[str], None]


@dataclass
class Figure:
    """One measured figure, next to what it is compared with in the same run.

    Attributes:
        section: One of `SECTIONS`.
        name: What was measured (``ConveyorSort kr-changwon (panda)``).
        value: The measurement, in ``unit``.
        unit: ``steps/s``, ``ms``, ``episodes/s``, ``frames/s``, ``MB``.
        reference: What ``value`` is compared with, in the same unit (None if nothing).
        reference_name: What the reference is (``raw PyBullet``, ``bare grpcio echo``).
        ratio: The figure the goal is about (its meaning is in ``ratio_name``), or None.
        ratio_name: How ``ratio`` reads (``cost vs raw``, ``vs echo``, ``vs 1 worker``).
        goal: The goal in words (``<= 1.2x``), empty when there is none.
        met: Whether the goal was met; None when there is no goal.
        details: Further numbers (percentiles, call counts, wall times) for the JSON.
    """

    section: str
    name: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    ratio: float | None = None
    ratio_name: str = ""
    goal: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The figure as plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class BenchProfile:
    """How long each benchmark measures; `QUICK` fits in about a minute, `FULL` in minutes.

    Attributes:
        name: ``quick`` or ``full``.
        env_steps: Control steps of ConveyorSort per timed block.
        env_blocks: Timed blocks per env (ours and raw alternate; medians are reported).
        env_sites: Sites whose env overhead is measured.
        panda_episodes: 50-step panda-gym episodes per timed block.
        link_steps: Round trips per link mode per round.
        link_rounds: Rounds; every mode runs once per round (interleaved).
        campaign_episodes: Episodes per trial of the fixed campaign.
        campaign_max_steps: Step cap per episode of the fixed campaign.
        campaign_sites: Sites of the fixed campaign (one trial per site and policy).
        campaign_repeats: Runs with 1 and with 2 workers, alternated (medians are reported).
        batch_episodes: Episodes of the one-worker trial run in unary and in batch mode.
        batch_max_steps: Step cap per episode of that trial.
        batch_repeats: Alternated unary/batch runs of it (medians are reported).
        replay_sites: Sites whose replay speed is measured.
        replay_max_steps: Step cap of the replayed episode (None: the whole episode).
        replay_repeats: Alternated original/replay repeats (medians are reported).
        video_frames: Frames filmed per video measurement.
        video_workers: Rendering process counts measured.
        memory_steps: Control steps the trial worker and the policy server run.
    """

    name: str
    env_steps: int
    env_blocks: int
    env_sites: tuple[str, ...]
    panda_episodes: int
    link_steps: int
    link_rounds: int
    campaign_episodes: int
    campaign_max_steps: int
    campaign_sites: tuple[str, ...]
    campaign_repeats: int
    batch_episodes: int
    batch_max_steps: int
    batch_repeats: int
    replay_sites: tuple[str, ...]
    replay_max_steps: int | None
    replay_repeats: int
    video_frames: int
    video_workers: tuple[int, ...]
    memory_steps: int


ALL_SITES = ("kr-changwon", "jp-nagoya", "us-austin")

QUICK = BenchProfile(
    name="quick",
    env_steps=150,
    env_blocks=3,
    env_sites=ALL_SITES,
    panda_episodes=2,
    link_steps=100,
    link_rounds=3,
    campaign_episodes=1,
    campaign_max_steps=60,
    campaign_sites=("kr-changwon", "jp-nagoya"),
    campaign_repeats=1,
    batch_episodes=8,
    batch_max_steps=40,
    batch_repeats=1,
    replay_sites=("kr-changwon",),
    replay_max_steps=150,
    replay_repeats=1,
    video_frames=30,
    video_workers=(1,),
    memory_steps=100,
)

FULL = BenchProfile(
    name="full",
    env_steps=600,
    env_blocks=11,
    env_sites=ALL_SITES,
    panda_episodes=12,
    link_steps=1000,
    link_rounds=5,
    campaign_episodes=4,
    campaign_max_steps=600,
    campaign_sites=("kr-changwon", "jp-nagoya"),
    campaign_repeats=3,
    batch_episodes=32,
    batch_max_steps=300,
    batch_repeats=3,
    replay_sites=ALL_SITES,
    replay_max_steps=None,
    replay_repeats=5,
    video_frames=200,
    video_workers=(1, 2),
    memory_steps=600,
)


def cpu_seconds(work: Callable[[], object]) -> float:
    """CPU time this thread spends in ``work()``.

    Thread CPU time, not wall time: time the OS gives other processes on a shared machine does
    not count, so two loops timed this way compare fairly under load.
    """
    start = time.thread_time()
    work()
    return time.thread_time() - start


def alternate(first: Callable[[], float], second: Callable[[], float], rounds: int) -> tuple:
    """Run two measurements ``rounds`` times each, alternating which goes first.

    Returns:
        Two lists of results, the first's and the second's, in round order.
    """
    a: list[float] = []
    b: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def median(values: list[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")
