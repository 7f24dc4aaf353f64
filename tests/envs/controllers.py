"""Controllers for ConveyorSort test episodes: sorting, losing parts, wrong bins, chaos.

Each factory takes the env (reset for the episode) and the episode's seed and returns a function
from observation to action. They read only observations, except `misrouting`, which looks up
the other bins' drop points in the cell to steer parts into the wrong one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs import observation as obs
from envs.conveyor_sort import ConveyorSortEnv
from policies.scripted import SITE_GAINS, decide

Observation = dict[str, np.ndarray]
Controller = Callable[[Observation], np.ndarray]


def scripted(home: str) -> Callable[[ConveyorSortEnv, int], Controller]:
    """The scripted controller tuned for ``home`` (another site's: parts get lost)."""
    return lambda _env, _seed: lambda observation: decide(SITE_GAINS[home], observation)


def misrouting(home: str) -> Callable[[ConveyorSortEnv, int], Controller]:
    """The scripted controller told the next bin's drop point: parts land in the wrong bin."""

    def make(env: ConveyorSortEnv, _seed: int) -> Controller:
        cell = env.cell
        assert cell is not None
        frame = obs.BaseFrame(cell.arm.base_position, cell.robot_yaw)
        drops = [
            np.array(frame.point(cell.drop_point(i)), np.float32) for i in range(len(cell.bins))
        ]

        def act(observation: Observation) -> np.ndarray:
            if not observation["part_type"].any():
                return decide(SITE_GAINS[home], observation)
            wrong = (int(np.argmax(observation["part_type"])) + 1) % len(drops)
            return decide(SITE_GAINS[home], {**observation, "bin_pos": drops[wrong]})

        return act

    return make


def random_actions(env: ConveyorSortEnv, seed: int) -> Controller:
    """Uniform random actions (parts ride off the belt or get knocked to the floor)."""
    rng = np.random.default_rng(seed)
    return lambda _observation: rng.uniform(-1.0, 1.0, 4).astype(np.float32)


def idle(env: ConveyorSortEnv, seed: int) -> Controller:
    """Never moves: every part rides off the belt's end."""
    return lambda _observation: np.zeros(4, np.float32)


CONTROLLERS: dict[str, Callable[[ConveyorSortEnv, int], Controller]] = {
    "home": lambda env, seed: scripted(env.site.site_id)(env, seed),
    "scripted_kr": scripted("kr-changwon"),
    "scripted_jp": scripted("jp-nagoya"),
    "scripted_us": scripted("us-austin"),
    "misroute": lambda env, seed: misrouting(env.site.site_id)(env, seed),
    "random": random_actions,
    "idle": idle,
}


@dataclass
class Played:
    """How an episode went: its steps, events (with the step they happened at), last info."""

    steps: int
    events: list[tuple[int, str]]
    info: dict[str, Any]
    terminated: bool
    truncated: bool


def play(env: ConveyorSortEnv, name: str, seed: int, max_steps: int | None = None) -> Played:
    """Run one episode of controller ``name`` (to its end, or ``max_steps``)."""
    observation, _ = env.reset(seed=seed)
    controller = CONTROLLERS[name](env, seed)
    events: list[tuple[int, str]] = []
    info: dict[str, Any] = {}
    terminated = truncated = False
    for step in range(max_steps or env.max_steps):
        action = controller(observation)
        observation, _, terminated, truncated, info = env.step(action)
        events.extend((step, event) for event in info["events"])
        if terminated or truncated:
            return Played(step + 1, events, info, terminated, truncated)
    return Played(max_steps or env.max_steps, events, info, terminated, truncated)
