"""Env overhead: a Gymnasium env step against the raw PyBullet calls that same step makes.

How "raw" is defined: the env steps once with a proxy in place of its PyBullet client that
records every call (function, arguments) made during the steps. Then the recorded calls are
replayed straight from the list on the same client, from the same reset state: the same scene,
substeps, control and state queries, and so the same physics, with no Gymnasium, no env logic
and no Python objects of the env in between. The ratio ``env CPU time / raw CPU time`` is what
the env's Python layer costs on top of the engine. The call counts per step show queries the
env makes more often than it needs.

The same is done for panda-gym's ``PandaPickAndPlace-v3`` (a peer built on the same engine),
when panda-gym is installed (``pip install physical-ai-testbed[bench]``).

Steps are timed in blocks of CPU time of this thread (see `figures.cpu_seconds`), env and raw
alternating; the ratio reported is the median of the per-block ratios.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the Testbed env ids)
from envs.core import CellEnv
from testbed.bench.figures import (
    SEED,
    BenchProfile,
    Figure,
    Progress,
    alternate,
    cpu_seconds,
    median,
)
from testbed.link.policy import Policy, SessionInfo

PANDA_ID = "PandaPickAndPlace-v3"
GOAL_RATIO = 1.10
"""DESIGN.md: every task's step costs at most 1.10x the raw PyBullet calls it makes."""
COWORKER_GOAL_RATIO = 1.15
"""DESIGN.md: with a co-worker and safety monitoring on, at most 1.15x."""
COWORKER_ENV_ID = "Testbed/ConveyorSort-v0"
"""The env whose rows at co-worker sites run through a visit (the others keep their steps)."""

Call = tuple[str, Callable[..., Any], tuple, dict, Any]  # name, function, args, kwargs, result
# A replayed call: function, args, kwargs, slot its result goes to, slot of its first argument.
Op = tuple[Callable[..., Any], tuple, dict, int, int]

# Constraint ids keep counting up in a world that is not reset, so a replay maps the ids the
# recorded run got to the ones the replay gets.
_USES_CONSTRAINT = frozenset(
    ("changeConstraint", "removeConstraint", "getConstraintInfo", "getConstraintState")
)


class CallLog:
    """Stands in for a PyBullet client and records every call made through it.

    Args:
        client: The real client (a ``BulletClient`` or anything with the same functions).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        calls = self.calls

        def record(*args: Any, **kwargs: Any) -> Any:
            frozen_args, frozen_kwargs = _frozen(args), _frozen(kwargs)
            result = attribute(*args, **kwargs)
            calls.append((name, attribute, frozen_args, frozen_kwargs, result))
            return result

        return record


def _frozen(value: Any) -> Any:
    """A copy of call arguments that later in-place changes by the caller cannot alter."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list | tuple):
        return type(value)(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ClientSlot:
    """Where an env keeps its PyBullet client (an object and an attribute name)."""

    owner: Any
    attribute: str

    def get(self) -> Any:
        """The client in the slot."""
        return getattr(self.owner, self.attribute)

    def put(self, client: Any) -> None:
        """Put ``client`` in the slot."""
        setattr(self.owner, self.attribute, client)


@dataclass(frozen=True)
class Episode:
    """A seed and the actions stepped after ``reset(seed=seed)``."""

    seed: int
    actions: Sequence[np.ndarray]


@dataclass
class Overhead:
    """Timed blocks of env steps and of their raw calls.

    Attributes:
        steps: Env steps per block.
        env_s: CPU seconds per block, env steps.
        raw_s: CPU seconds per block, the recorded calls replayed.
        calls: PyBullet calls per function name over one block.
        same_physics: Whether the world ended in the same state after env steps and after
            their raw calls (every body's base pose and joint positions, bit for bit).
    """

    steps: int
    env_s: list[float]
    raw_s: list[float]
    calls: Counter[str]
    same_physics: bool

    @property
    def ratio(self) -> float:
        """Median over blocks of env time / raw time."""
        return median([e / r for e, r in zip(self.env_s, self.raw_s, strict=True)])

    def figure(self, name: str, goal: str = "", met: bool | None = None) -> Figure:
        """The measurement as a figure (steps per CPU second, env vs raw)."""
        env_rate = self.steps / median(self.env_s)
        raw_rate = self.steps / median(self.raw_s)
        per_step = {k: round(v / self.steps, 3) for k, v in self.calls.most_common()}
        return Figure(
            section="env",
            name=name,
            value=env_rate,
            unit="steps/s",
            reference=raw_rate,
            reference_name="raw",
            ratio=self.ratio,
            ratio_name="cost vs raw",
            goal=goal,
            met=met,
            details={
                "steps_per_block": self.steps,
                "blocks": len(self.env_s),
                "env_cpu_s": self.env_s,
                "raw_cpu_s": self.raw_s,
                "python_overhead_us_per_step": 1e6 / env_rate - 1e6 / raw_rate,
                "pybullet_calls_per_step": sum(self.calls.values()) / self.steps,
                "raw_same_physics": self.same_physics,
                "calls_per_step": per_step,
            },
        )


def measure_overhead(
    env: gym.Env, slot: ClientSlot, episodes: list[Episode], blocks: int
) -> Overhead:
    """Time ``env`` stepping ``episodes`` against replaying the PyBullet calls it makes.

    Args:
        env: The env (as ``gymnasium.make`` returns it: wrappers included).
        slot: Where the env's PyBullet client lives.
        episodes: What to step; each block steps all of them.
        blocks: Timed blocks per side, alternating which side goes first.
    """
    logs = [_record(env, slot, episode) for episode in episodes]
    calls: Counter[str] = Counter(name for log in logs for name, *_ in log)
    programs = [RawProgram.from_log(log) for log in logs]

    ends: dict[str, set[str]] = {"env": set(), "raw": set()}

    def env_block() -> float:
        seconds = sum(_time_env(env, episode) for episode in episodes)
        ends["env"].add(_fingerprint(slot.get()))
        return seconds

    def raw_block() -> float:
        seconds = sum(
            _time_raw(env, slot, episode, program)
            for episode, program in zip(episodes, programs, strict=True)
        )
        ends["raw"].add(_fingerprint(slot.get()))
        return seconds

    alternate(env_block, raw_block, 1)  # warm-up: caches, allocator, branch predictors
    env_s, raw_s = alternate(env_block, raw_block, blocks)
    steps = sum(len(e.actions) for e in episodes)
    return Overhead(
        steps, env_s, raw_s, calls, ends["env"] == ends["raw"] and len(ends["env"]) == 1
    )


def _fingerprint(client: Any) -> str:
    """Every body's base pose and joint positions, exactly (float reprs round-trip)."""
    state = []
    for index in range(client.getNumBodies()):
        body = client.getBodyUniqueId(index)
        state.append(client.getBasePositionAndOrientation(body))
        joints = client.getNumJoints(body)
        if joints:
            state.append(tuple(s[0] for s in client.getJointStates(body, range(joints))))
    return repr(state)


def _record(env: gym.Env, slot: ClientSlot, episode: Episode) -> list[Call]:
    env.reset(seed=episode.seed)
    client = slot.get()
    log = CallLog(client)
    slot.put(log)
    try:
        for action in episode.actions:
            env.step(action)
    finally:
        slot.put(client)
    return log.calls


def _time_env(env: gym.Env, episode: Episode) -> float:
    env.reset(seed=episode.seed)
    step = env.step

    def run() -> None:
        for action in episode.actions:
            step(action)

    return cpu_seconds(run)


@dataclass(frozen=True)
class RawProgram:
    """Recorded calls ready to replay: constraint ids mapped, leftovers known.

    Attributes:
        ops: The calls, in order.
        slots: Constraints the calls create.
        leftover: Slots of constraints the calls create and never remove.
    """

    ops: list[Op]
    slots: int
    leftover: tuple[int, ...]

    @classmethod
    def from_log(cls, log: list[Call]) -> RawProgram:
        """Compile a `CallLog` record."""
        made: dict[int, int] = {}
        removed: set[int] = set()
        ops: list[Op] = []
        for name, function, args, kwargs, result in log:
            out = uses = -1
            if name == "createConstraint":
                out = made[result] = len(made)
            elif name in _USES_CONSTRAINT and args and args[0] in made:
                uses, args = made[args[0]], args[1:]
                if name == "removeConstraint":
                    removed.add(uses)
            ops.append((function, args, kwargs, out, uses))
        leftover = tuple(slot for slot in made.values() if slot not in removed)
        return cls(ops, len(made), leftover)

    def run(self) -> list[Any]:
        """Make the calls; returns the constraint ids they got."""
        ids: list[Any] = [None] * self.slots
        for function, args, kwargs, out, uses in self.ops:
            result = (
                function(ids[uses], *args, **kwargs) if uses >= 0 else function(*args, **kwargs)
            )
            if out >= 0:
                ids[out] = result
        return ids


def _time_raw(env: gym.Env, slot: ClientSlot, episode: Episode, program: RawProgram) -> float:
    env.reset(seed=episode.seed)
    ids: list[Any] = []
    seconds = cpu_seconds(lambda: ids.extend(program.run()))
    for index in program.leftover:  # a weld the env would have dropped at its next reset
        slot.get().removeConstraint(ids[index])
    return seconds


def scripted_actions(
    env: gym.Env, policy: Policy | None, site: str, steps: int
) -> list[np.ndarray]:
    """The actions ``policy`` takes in the first ``steps`` steps of the ``SEED`` episode.

    Without a policy (a task with no scripted controller), seeded uniform random actions.
    """
    if policy is None:
        rng = np.random.default_rng(SEED)
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        return [rng.uniform(space.low, space.high).astype(space.dtype) for _ in range(steps)]
    session = SessionInfo(f"bench-env-{site}", site=site, seed=SEED)
    observation, _ = env.reset(seed=SEED)
    policy.reset(session)
    shape = tuple(env.action_space.shape or ())
    actions = []
    for _ in range(steps):
        action = np.asarray(policy.act(session, observation), dtype=np.float32)
        action = action.reshape((-1, *shape))[0]
        actions.append(action)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return actions


def testbed_overhead(
    env_id: str, site: str, policy: Policy | None, profile: BenchProfile
) -> tuple[str, Overhead, float | None]:
    """Env overhead of ``env_id`` at ``site``, driven by ``policy``'s actions (None: random).

    ConveyorSort (the task DESIGN's co-worker goal is measured on) at a site with co-workers
    runs at least to the end of every co-worker's first visit, so the safety monitor is
    measured with a person in the cell; other tasks keep ``profile.env_steps`` (their rows say
    the share of steps with a person in).

    Returns:
        The robot model, the measurement, and the share of the measured steps with a person
        in the cell (None at a site without co-workers).
    """
    env = gym.make(env_id, site=site)
    try:
        cell = _cell_env(env, env_id)
        visits, first_visits_end_s = _visits(env, cell)
        control_dt = cell.control_dt
        steps = profile.env_steps
        if env_id == COWORKER_ENV_ID:
            steps = max(steps, int(math.ceil(first_visits_end_s / control_dt)) + 1)
        actions = scripted_actions(env, policy, site, steps)
        slot = ClientSlot(cell.sim, "client")
        overhead = measure_overhead(env, slot, [Episode(SEED, actions)], profile.env_blocks)
        present = None
        if visits is not None:  # step i ends at (i + 1) dt, where the monitor places people
            times = [(i + 1) * control_dt for i in range(len(actions))]
            busy = sum(any(start <= t < end for start, end in visits) for t in times)
            present = busy / max(len(actions), 1)
        return cell.site.site.robot.model, overhead, present
    finally:
        env.close()


def _cell_env(env: gym.Env, env_id: str) -> CellEnv:
    """The Testbed cell env under ``env``'s wrappers (the bench measures its engine calls)."""
    inner = env.unwrapped
    if not isinstance(inner, CellEnv):
        raise TypeError(f"{env_id}: expected a Testbed cell env, got {type(inner).__name__}")
    return inner


def _visits(env: gym.Env, cell: CellEnv) -> tuple[list[tuple[float, float]] | None, float]:
    """Every co-worker visit ``(start_s, end_s)`` of the ``SEED`` episode (None: no people).

    Also returns when the last of their first visits ends (0 without people).
    """
    env.reset(seed=SEED)
    people = cell.coworker_visits()
    if not people:
        return None, 0.0
    visits = [visit for person in people for visit in person]
    return visits, max((person[0][1] for person in people if person), default=0.0)


def panda_gym_overhead(profile: BenchProfile) -> Overhead | None:
    """Env overhead of panda-gym's PandaPickAndPlace-v3 (seeded random actions); None if absent."""
    if importlib.util.find_spec("panda_gym") is None:
        return None
    import panda_gym  # noqa: F401  (registers the Panda env ids)

    env = gym.make(PANDA_ID)
    try:
        rng = np.random.default_rng(SEED)
        length = env.spec.max_episode_steps or 50  # type: ignore[union-attr]
        shape = env.action_space.shape
        episodes = [
            Episode(seed, [rng.uniform(-1.0, 1.0, shape).astype(np.float32) for _ in range(length)])
            for seed in range(profile.panda_episodes)
        ]
        slot = ClientSlot(env.unwrapped.sim, "physics_client")  # type: ignore[attr-defined]
        return measure_overhead(env, slot, episodes, profile.env_blocks)
    finally:
        env.close()


def run(
    profile: BenchProfile,
    env_ids: Sequence[str],
    policy_for: Callable[[str, str], Policy | None],
    progress: Progress,
) -> tuple[list[Figure], list[str]]:
    """The env-overhead section: every env id at every profile site, then panda-gym.

    Args:
        profile: How long to measure.
        env_ids: The Testbed env ids (tasks) to measure.
        policy_for: Builds the (in-process) policy whose actions drive an env id at a site;
            None where the task has no scripted controller (seeded random actions drive it).
        progress: Receives a line per measurement.

    Returns:
        The figures and notes (a skipped panda-gym).
    """
    notes: list[str] = []
    progress(f"env: {PANDA_ID} (panda-gym)")
    panda = panda_gym_overhead(profile)
    figures = []
    for env_id in env_ids:
        task = env_id.split("/")[-1].removesuffix("-v0")
        for site in profile.env_sites:
            progress(f"env: {env_id} at {site}")
            policy = policy_for(env_id, site)
            model, overhead, present = testbed_overhead(env_id, site, policy, profile)
            ratio = overhead.ratio
            limit = COWORKER_GOAL_RATIO if present else GOAL_RATIO  # a person in some steps
            met = ratio <= limit and (panda is None or ratio < panda.ratio)
            goal = f"<= {limit}x" + (f", < panda-gym {panda.ratio:.2f}x" if panda else "")
            driven = "" if policy is not None else ", random actions"
            person = "" if present is None else f", co-worker in {present:.0%} of steps"
            figure = overhead.figure(f"{task} {site} ({model}{driven}{person})", goal, met)
            if present is not None:
                figure.details["coworker_present_share"] = present
            figures.append(figure)
    if panda is None:
        notes.append(
            "panda-gym is not installed: no peer row (pip install 'physical-ai-testbed[bench]')"
        )
    else:
        version = importlib.metadata.version("panda-gym")
        figures.append(panda.figure(f"panda-gym {version} {PANDA_ID}", "peer"))
    return figures, notes
