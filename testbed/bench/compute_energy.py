"""Compute energy per action of the scripted controller in-process and behind a policy server.

Part of the policy-link section of ``testbed bench``: one ConveyorSort episode at kr-changwon,
capped at the profile's ``memory_steps``, run twice with the same seed, once calling the scripted
controller in-process (measured around ``act`` by the testbed's meter) and once through
`RemotePolicy` to a server on 127.0.0.1 (its own meter's figure in each reply), so both are
measured the way a campaign measures them. The figure is in millijoules per action, with its
source (``rapl``, ``cpu-estimate``, ...); ``remote vs in-process`` is the ratio of the two. Both
meters bracket the policy's call only (not the wire), so the two should agree: a ratio far from
1 means the meters disagree. Process CPU time counts every thread of the process, and here the
server runs in the benchmark's own process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium

from testbed.bench.figures import SEED, BenchProfile, Figure, Progress
from testbed.episodes.rollout import run_episode
from testbed.link.client import RemotePolicy
from testbed.link.policy import Policy, SessionInfo

if TYPE_CHECKING:
    from testbed.bench.policy_link import ServerFactory

SITE = "kr-changwon"
ENV = "Testbed/ConveyorSort-v0"


def _per_action(env: gymnasium.Env, policy: Any, steps: int) -> tuple[float, dict[str, Any]]:
    """Compute mJ per action of one capped episode, and the tally's summary."""
    session = SessionInfo("bench-energy", site=SITE, seed=SEED)
    result = run_episode(env, policy, session, max_steps=steps, policy_id="bench@1")
    summary = result.compute.summary()
    joules, actions = summary["joules"], summary["actions"]
    value = 1000.0 * joules / actions if joules is not None and actions else float("nan")
    return value, summary


def run(
    profile: BenchProfile,
    policy_for_site: Callable[[str], Policy],
    serve: ServerFactory,
    progress: Progress,
) -> tuple[list[Figure], list[str]]:
    """The compute-energy figure (in-process vs remote) and a note naming its sources."""
    steps = profile.memory_steps
    env = gymnasium.make(ENV, site=SITE)
    try:
        progress(f"link: compute energy, {SITE}, in-process, {steps} steps")
        local, local_summary = _per_action(env, policy_for_site(SITE), steps)
        progress(f"link: compute energy, {SITE}, remote, {steps} steps")
        server = serve(policy_for_site(SITE))
        try:
            with RemotePolicy(
                server.address, observation_space=env.observation_space,
                action_space=env.action_space,  # type: ignore[arg-type]
            ) as remote:  # fmt: skip
                far, far_summary = _per_action(env, remote, steps)
        finally:
            server.stop(0)
    finally:
        env.close()
    ratio = far / local if local > 0 else None
    details = {
        "in_process": local_summary,
        "remote": far_summary,
        "in_process_source": local_summary["source"],
        "remote_source": far_summary["source"],
    }
    figure = Figure(
        "link", f"compute per action, scripted in-process ({local_summary['source']})", local,
        "mJ/action", reference=far,
        reference_name=f"remote, server-reported ({far_summary['source']})",
        ratio=ratio, ratio_name="remote vs in-process", details=details,
    )  # fmt: skip
    note = (
        f"compute energy per action at {SITE}: in-process {local:.4f} mJ "
        f"({local_summary['source']}), remote {far:.4f} mJ ({far_summary['source']}, "
        "as the server reported it)"
    )
    return [figure], [note]
