"""Both cell envs reproduce episodes recorded before the CellEnv refactor, bit for bit.

The fixtures (``fixtures/cell_episodes.npz``) hold, for each task and site, three seeded
episodes run one after another in one env (so the reuse of the built cell across resets is
covered): every observation, reward, flag, numeric info value and event, and the episode
summary. ConveyorSort episodes are capped at `CONVEYOR_STEPS` steps (then summarised with
``episode_summary()``); TouchPart episodes run to their end.

Regenerate only on purpose (a behaviour change), with ``python -m tests.envs.test_cell_fixtures``.
Re-recorded on purpose: for us-austin's co-worker, and when ``max_ee_speed_mps`` became a norm
(docs/factory_bundle.md, Speeds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from envs import observation as obs
from policies.scripted import SITE_GAINS, decide

FIXTURE = Path(__file__).parent / "fixtures" / "cell_episodes.npz"
SITES = ("kr-changwon", "jp-nagoya", "us-austin")
TASKS = ("Testbed/ConveyorSort-v0", "Testbed/TouchPart-v0")
SEEDS = (0, 1, 2)
CONVEYOR_STEPS = 300
INFO_KEYS = ("tcp_speed_mps", "contact_force_n", "energy_j", "parts_sorted", "distance_m")


def _controller(site: str, seed: int) -> Any:
    """Scripted home-site control for seeds 0 and 1, uniform random actions for seed 2."""
    if seed == 2:
        rng = np.random.default_rng(seed)
        return lambda _observation: rng.uniform(-1.0, 1.0, 4).astype(np.float32)
    return lambda observation: decide(SITE_GAINS[site], observation)


def _episode(env: gym.Env, site: str, seed: int) -> dict[str, np.ndarray]:
    observation, _ = env.reset(seed=seed)
    act = _controller(site, seed)
    rows = [np.concatenate([observation[name] for name in obs.FIELDS])]
    rewards, flags, infos, events = [], [], [], []
    limit = CONVEYOR_STEPS if "Conveyor" in env.spec.id else 10**6  # type: ignore[union-attr]
    summary: dict[str, Any] = {}
    for _ in range(limit):
        observation, reward, terminated, truncated, info = env.step(act(observation))
        rows.append(np.concatenate([observation[name] for name in obs.FIELDS]))
        rewards.append(reward)
        flags.append((terminated, truncated))
        infos.append([float(info.get(key, math.nan)) for key in INFO_KEYS])
        events.extend(list(info.get("events", ())) + list(info.get("violations", ())))
        if terminated or truncated:
            summary = info["episode_metrics"]
            break
    else:
        summary = env.unwrapped.episode_summary()  # type: ignore[attr-defined]
    return {
        "observations": np.stack(rows),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "flags": np.asarray(flags, dtype=bool).reshape(-1, 2),
        "infos": np.asarray(infos, dtype=np.float64).reshape(-1, len(INFO_KEYS)),
        "events": np.frombuffer(json.dumps(events).encode(), dtype=np.uint8),
        "summary": np.frombuffer(json.dumps(summary, sort_keys=True).encode(), dtype=np.uint8),
    }


def run(task: str, site: str) -> dict[str, np.ndarray]:
    """The three seeded episodes of ``task`` at ``site``, keyed ``<seed>/<what>``."""
    env = gym.make(task, site=site)
    try:
        return {
            f"{seed}/{key}": value
            for seed in SEEDS
            for key, value in _episode(env, site, seed).items()
        }
    finally:
        env.close()


def _key(task: str, site: str) -> str:
    return f"{task.split('/')[1]}/{site}"


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.split("/")[1])
def test_env_reproduces_recorded_episodes_bit_for_bit(task: str, site: str) -> None:
    with np.load(FIXTURE) as data:
        prefix = _key(task, site) + "/"
        recorded = {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
    replayed = run(task, site)
    assert sorted(replayed) == sorted(recorded)
    for key, value in recorded.items():
        got = replayed[key]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert got.tobytes() == value.tobytes(), f"{task} at {site}: {key} differs"


if __name__ == "__main__":
    arrays = {
        f"{_key(task, site)}/{key}": value
        for task in TASKS
        for site in SITES
        for key, value in run(task, site).items()
    }
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes, {len(arrays)} arrays)")
