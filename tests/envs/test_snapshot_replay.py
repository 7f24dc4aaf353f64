"""Replaying from any snapshot of any episode gives the recorded observations bit for bit.

A property over episodes, not a spot check: episodes are recorded the way a campaign records
them (one env runs several episodes in a row, a snapshot every few steps before that step's
action), with controllers that sort, lose parts (a foreign site's tuning, random actions) and
put parts in the wrong bin; then every snapshot of every episode is restored into another env,
which steps the recorded actions to the episode's end and must reproduce every observation and
reward exactly. Half the restores go into an env whose world has made more part bodies than
the recording's (so nothing may depend on the history of the world a snapshot is restored into).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pytest

from envs.conveyor_sort import ConveyorSortEnv
from tests.envs.controllers import CONTROLLERS, Observation


@dataclass
class Episode:
    """What a replay needs: seed, actions, snapshots; and what it must reproduce."""

    label: str
    seed: int
    actions: list[np.ndarray] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    snapshots: dict[int, bytes] = field(default_factory=dict)
    events: list[tuple[int, str]] = field(default_factory=list)  # (step, event)


# ---------------------------------------------------------------------- record and replay


def record_in_sequence(
    site: str, plan: list[tuple[str, int, int | None]], snapshot_every: int
) -> list[Episode]:
    """Run ``plan`` (controller, seed, steps or None for all) one after another in ONE env.

    As a trial does: the env's world makes new part bodies every episode.
    """
    env = ConveyorSortEnv(site)
    episodes = []
    try:
        for name, seed, max_steps in plan:
            observation, _ = env.reset(seed=seed)
            controller = CONTROLLERS[name](env, seed)
            episode = Episode(f"{site}/{name}/seed{seed}", seed, observations=[observation])
            limit = max_steps or env.max_steps
            for t in range(limit):
                if t % snapshot_every == 0:  # state before action t, as EpisodeRecorder does
                    episode.snapshots[t] = env.save_snapshot()
                action = np.asarray(controller(observation), np.float32)
                observation, reward, terminated, truncated, info = env.step(action)
                episode.actions.append(action)
                episode.observations.append(observation)
                episode.rewards.append(float(reward))
                episode.events.extend((t, event) for event in info["events"])
                if terminated or truncated:
                    break
            episodes.append(episode)
    finally:
        env.close()
    return episodes


def _same(recorded: Mapping[str, np.ndarray], replayed: Mapping[str, np.ndarray]) -> str | None:
    """None if bit-identical, else the first differing field and values."""
    for name, value in recorded.items():
        if value.dtype != replayed[name].dtype or value.tobytes() != replayed[name].tobytes():
            return f"{name}: recorded {value.tolist()}, replayed {replayed[name].tolist()}"
    return None


def replay_from_every_snapshot(env: ConveyorSortEnv, episode: Episode) -> list[str]:
    """Restore each snapshot, step to the end; returns one line per divergence."""
    problems = []
    for i, (start, blob) in enumerate(sorted(episode.snapshots.items())):
        if i % 2:
            env.reset(seed=episode.seed + 1)  # the next reset's parts get newer engine ids
        env.reset(seed=episode.seed)
        observation = env.load_snapshot(blob)
        where = f"{episode.label} from snapshot {start}"
        if (diff := _same(episode.observations[start], observation)) is not None:
            problems.append(f"{where}: restored observation: {diff}")
            continue
        for t in range(start, len(episode.actions)):
            observation, reward, *_ = env.step(episode.actions[t])
            diff = _same(episode.observations[t + 1], observation)
            if diff is None and reward != episode.rewards[t]:
                diff = f"reward: recorded {episode.rewards[t]}, replayed {reward}"
            if diff is not None:
                problems.append(f"{where}: step {t}: {diff}")
                break
    return problems


def check_site(site: str, plan: list[tuple[str, int, int | None]], every: int) -> None:
    episodes = record_in_sequence(site, plan, every)
    env = ConveyorSortEnv(site)
    try:
        problems = [p for episode in episodes for p in replay_from_every_snapshot(env, episode)]
    finally:
        env.close()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------- the properties

# The first part of episodes (up to a lost or wrong-bin part at each site), a snapshot every
# 60 steps: (controller, seed, steps).
FAST_PLANS = {
    "kr-changwon": [("home", 0, 300), ("scripted_us", 1, 300), ("misroute", 2, 300)],
    "jp-nagoya": [("random", 1, 240), ("misroute", 0, 400)],  # wrong bin at step 377
    "us-austin": [("scripted_kr", 0, 300), ("misroute", 1, 300)],  # sorted 212, wrong bin 245
}


@pytest.mark.parametrize("site", sorted(FAST_PLANS))
def test_every_snapshot_replays_bit_identically(site: str) -> None:
    check_site(site, FAST_PLANS[site], every=60)


@pytest.mark.nightly  # ~5 min: whole episodes; the fast test above covers the same cases
@pytest.mark.parametrize("site", ["kr-changwon", "jp-nagoya", "us-austin"])
def test_every_snapshot_of_whole_episodes_replays_bit_identically(site: str) -> None:
    plan = [
        ("home", 0),
        ("scripted_kr", 1),
        ("scripted_jp", 2),
        ("scripted_us", 3),
        ("misroute", 4),
        ("random", 5),
        ("home", 6),
    ]
    check_site(site, [(name, seed, None) for name, seed in plan], every=100)
