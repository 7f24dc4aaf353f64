"""`run_bench`: run the chosen benchmark sections in order and collect a `BenchReport`.

The caller (``testbed bench``, the composition root) passes in what the testbed cannot build
itself: the in-process policy for a site and a policy-server factory.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from testbed.bench.figures import ENV_ID, SECTIONS, BenchProfile, Figure, Progress
from testbed.bench.output import BenchReport, SectionResult, machine_info, now_utc

if TYPE_CHECKING:
    from testbed.bench.policy_link import ServerFactory
    from testbed.link.policy import Policy

Section = Callable[[], tuple[list[Figure], list[str]]]


def run_bench(
    profile: BenchProfile,
    sections: Sequence[str],
    policy_for_site: Callable[[str], Policy],
    serve: ServerFactory,
    progress: Progress,
    env_ids: Sequence[str] = (ENV_ID,),
    policy_for: Callable[[str, str], Policy | None] | None = None,
) -> BenchReport:
    """Run ``sections`` (a subset of `SECTIONS`, run in that order) with ``profile``.

    A section that fails is recorded with its error and the others still run.

    Args:
        profile: How long each benchmark measures.
        sections: Which sections to run.
        policy_for_site: Builds the in-process policy that drives a site's env.
        serve: Serves a policy on 127.0.0.1 for the policy-link section.
        progress: Receives a line per step of the run.
        env_ids: The env ids (tasks) of the env-overhead section.
        policy_for: Builds the policy driving an env id at a site in the env-overhead section
            (None for a task without one: random actions); default ``policy_for_site`` for
            every env id.

    Raises:
        ValueError: Naming the valid sections, if one is unknown.
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}: choose from {', '.join(SECTIONS)}")
    if policy_for is None:

        def policy_for(env_id: str, site: str) -> Policy | None:
            return policy_for_site(site)

    runners = _runners(profile, policy_for_site, serve, progress, env_ids, policy_for)
    report = BenchReport(profile.name, now_utc(), machine_info())
    start = time.perf_counter()
    for name in SECTIONS:
        if name in sections:
            report.sections.append(_run_section(name, runners[name]))
    report.duration_s = time.perf_counter() - start
    report.machine["load_average_end"] = machine_info()["load_average"]
    return report


def _runners(
    profile: BenchProfile,
    policy_for_site: Callable[[str], Policy],
    serve: ServerFactory,
    progress: Progress,
    env_ids: Sequence[str],
    policy_for: Callable[[str, str], Policy | None],
) -> dict[str, Section]:
    # Imported here: each section pulls in its own heavy dependencies (grpc, Hydra, video).
    from testbed.bench import (
        batch_campaign,
        cameras,
        campaign,
        compute_energy,
        env_overhead,
        memory,
        policy_link,
        replay_speed,
    )

    def campaigns() -> tuple[list[Figure], list[str]]:
        figures, notes = campaign.run(profile, progress)
        batch_figures, batch_notes = batch_campaign.run(profile, progress)
        return figures + batch_figures, notes + batch_notes

    def link() -> tuple[list[Figure], list[str]]:
        figures, notes = policy_link.run(profile, serve, progress)
        energy_figures, energy_notes = compute_energy.run(profile, policy_for_site, serve, progress)
        return figures + energy_figures, notes + energy_notes

    return {
        "env": lambda: env_overhead.run(profile, env_ids, policy_for, progress),
        "link": link,
        "campaign": campaigns,
        "replay": lambda: replay_speed.run(profile, policy_for_site, progress),
        "memory": lambda: memory.run(profile, progress),
        "camera": lambda: cameras.run(profile, policy_for_site, serve, progress),
    }


def _run_section(name: str, runner: Section) -> SectionResult:
    start = time.perf_counter()
    result = SectionResult(name)
    try:
        result.figures, result.notes = runner()
    except Exception as exc:  # one failed section must not hide the others' figures
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result.seconds = time.perf_counter() - start
    return result
