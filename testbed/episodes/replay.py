"""Replay a recorded episode: rebuild its site, re-apply the recorded actions, verify every step.

Replaying needs no policy and no network: the record holds the env id and keyword arguments,
the seed and the actions the simulator received (see `testbed.episodes.records`). The site's factory
bundle must be the one the episode ran on (its hash is in the record), or the replay refuses.

With verification on, every observation, reward, termination flag, recorded info value and
event must be bit-identical to the record; the first difference raises
`ReplayDivergenceError` naming the step, field, element and both values.

A replay can start mid-episode: ``from_step`` restores the nearest state snapshot at or before
that step (``env.load_snapshot``), steps the recorded actions up to it, and carries on. Anything
that wants to see the replay as it goes (a video writer, GUI pacing, a progress bar) is an
*observer*: a callable that receives a `ReplayStep` for each observation from ``from_step`` on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the env ids a record names)
from envs.errors import EnvsError
from testbed.episodes.env_contract import EnvContractError, contract_of
from testbed.episodes.records import EpisodeMeta, EpisodeRecord, read_record
from testbed.errors import ReplayDivergenceError, ReplayError


@dataclass(frozen=True)
class ReplayStep:
    """One observation of a replay, as handed to observers.

    Attributes:
        index: Observation row: 0 is the reset observation, ``k`` follows the ``k``-th action.
        reward: Reward of the action that led here (0.0 for the starting observation).
        total_reward: Sum of rewards up to here (the record's, before the replay started).
        events: Events and ``violation:<kind>`` of the step that led here.
        env: The unwrapped env, positioned at this observation (render it, inspect it).
    """

    index: int
    reward: float
    total_reward: float
    events: tuple[str, ...]
    env: gym.Env


Observer = Callable[[ReplayStep], None]


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did.

    Attributes:
        source: The record's path (or ``"<record>"`` for an in-memory record).
        meta: The record's meta.
        start_step: Where simulation started: 0 (reset) or the restored snapshot's step.
        from_step: The first step observers saw.
        end_step: The last observation replayed (the record's step count).
        verified: Whether every step was checked bit for bit (and matched).
        wall_time_s: Wall time of the stepping loop (not env construction).
    """

    source: str
    meta: EpisodeMeta
    start_step: int
    from_step: int
    end_step: int
    verified: bool
    wall_time_s: float

    @property
    def steps_replayed(self) -> int:
        """Env steps simulated (from the start step, including any fast-forward)."""
        return self.end_step - self.start_step

    @property
    def steps_per_s(self) -> float:
        """Replay speed in env steps per wall second."""
        return self.steps_replayed / self.wall_time_s if self.wall_time_s > 0 else float("inf")


def load_episode(path: Path) -> EpisodeRecord:
    """Read a record for replay.

    Raises:
        ReplayError: Naming the file, if it is missing or not an episode record.
    """
    if not Path(path).is_file():
        raise ReplayError(f"{path}: no such episode record")
    try:
        return read_record(path)
    except ValueError as exc:
        raise ReplayError(str(exc)) from exc


def open_env(meta: EpisodeMeta, source: str = "<record>", **overrides: Any) -> gym.Env:
    """Rebuild the record's env (``gymnasium.make`` with its id and kwargs plus ``overrides``).

    Raises:
        ReplayError: If the env cannot be built, does not offer the env contract
            (`envs.contract.CellContract`), or its site bundle differs from the record's.
    """
    kwargs = {**meta.env_kwargs, **overrides}
    try:
        env = gym.make(meta.env_id, **kwargs)
    except (gym.error.Error, EnvsError, ValueError, TypeError, OSError) as exc:
        raise ReplayError(f"{source}: cannot rebuild {meta.env_id} with {kwargs}: {exc}") from exc
    try:
        contract = contract_of(env)
    except EnvContractError as exc:
        env.close()
        raise ReplayError(f"{source}: cannot replay {meta.env_id}: {exc}") from exc
    now = _bare_hash(contract.bundle_hash)
    if now != _bare_hash(meta.bundle_hash):
        env.close()
        raise ReplayError(
            f"{source}: site {meta.site!r} has changed since the episode was recorded: bundle "
            f"hash {now or 'unknown'}, the record expects {meta.bundle_hash or 'unknown'}; "
            "replay it against the bundle it ran on"
        )
    return env


def replay_episode(
    record: EpisodeRecord,
    *,
    verify: bool = True,
    from_step: int = 0,
    observers: Sequence[Observer] = (),
    env: gym.Env | None = None,
    source: str = "<record>",
) -> ReplayReport:
    """Re-simulate a recorded episode, optionally verifying it bit for bit.

    Args:
        record: The episode.
        verify: Check every observation, reward, flag, info value and event against the record.
        from_step: First step observers see; simulation starts at the nearest snapshot at or
            before it (or at reset).
        observers: Called with a `ReplayStep` for every observation from ``from_step`` on.
        env: An env built by `open_env` (closed by the caller); None builds and closes one.
        source: How to name the record in messages (its path).

    Raises:
        ReplayError: If ``from_step`` is outside the episode or the env cannot be rebuilt.
        ReplayDivergenceError: At the first difference, when verifying.
    """
    if not 0 <= from_step <= record.steps:
        raise ReplayError(f"{source}: --from-step {from_step} is outside 0..{record.steps}")
    owned = env is None
    env = env if env is not None else open_env(record.meta, source)
    checker = _Checker(record, source) if verify else None
    try:
        start_time = time.perf_counter()
        start = _start(env, record, from_step, checker, source)
        totals = np.concatenate([[0.0], np.cumsum(record.rewards)])
        if start == from_step:
            _notify(observers, ReplayStep(start, 0.0, float(totals[start]), (), env.unwrapped))
        for t in range(start, record.steps):
            observation, reward, terminated, truncated, info = env.step(record.actions[t])
            events = _events(info)
            if checker is not None:
                checker.transition(
                    t, observation, float(reward), terminated, truncated, info, events
                )
            if t + 1 >= from_step:
                total = float(totals[t]) + float(reward)
                step = ReplayStep(t + 1, float(reward), total, events, env.unwrapped)
                _notify(observers, step)
        wall = time.perf_counter() - start_time
    finally:
        if owned:
            env.close()
    return ReplayReport(source, record.meta, start, from_step, record.steps, verify, wall)


def replay_file(path: Path, **kwargs: Any) -> ReplayReport:
    """`load_episode` then `replay_episode` (same keyword arguments)."""
    return replay_episode(load_episode(path), source=str(path), **kwargs)


def _start(
    env: gym.Env, record: EpisodeRecord, from_step: int, checker: _Checker | None, source: str
) -> int:
    """Reset with the record's seed, restore the nearest snapshot; returns the start step."""
    observation, _ = env.reset(seed=record.meta.seed)
    start = max((s for s in record.snapshots if s <= from_step), default=0) if from_step else 0
    if start:
        try:
            observation = contract_of(env).load_snapshot(record.snapshots[start])
        except (ValueError, EnvsError, EnvContractError) as exc:
            raise ReplayError(f"{source}: snapshot at step {start}: {exc}") from exc
    if checker is not None:
        checker.observation(start, start, observation)
    return start


def _events(info: dict[str, Any]) -> tuple[str, ...]:
    """A step's events as the recorder writes them (events, then ``violation:<kind>``)."""
    events = [str(e) for e in info.get("events", ())]
    return (*events, *(f"violation:{v}" for v in info.get("violations", ())))


def _notify(observers: Sequence[Observer], step: ReplayStep) -> None:
    for observer in observers:
        observer(step)


class _Checker:
    """Compares replayed steps with the record, bit for bit."""

    def __init__(self, record: EpisodeRecord, source: str) -> None:
        self.record = record
        self.source = source
        self.events: dict[int, list[str]] = {}
        for step, event in record.meta.events:
            self.events.setdefault(step, []).append(event)

    def observation(self, step: int, row: int, observation: Any) -> None:
        replayed = observation if isinstance(observation, dict) else {"observation": observation}
        for name, recorded in self.record.observations.items():
            if name not in replayed:
                self._fail(step, row, f"obs/{name}", (), "present", "missing")
            self._compare(step, row, f"obs/{name}", recorded[row], np.asarray(replayed[name]))

    def transition(
        self,
        t: int,
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
        events: tuple[str, ...],
    ) -> None:
        record = self.record
        self.observation(t, t + 1, observation)
        self._compare(t, t + 1, "reward", record.rewards[t], np.float64(reward))
        self._compare(t, t + 1, "terminated", record.terminations[t], np.bool_(terminated))
        self._compare(t, t + 1, "truncated", record.truncations[t], np.bool_(truncated))
        for key, values in record.infos.items():
            replayed = np.float64(info[key]) if key in info else np.float64(np.nan)
            self._compare(t, t + 1, f"info/{key}", values[t], replayed)
        expected = tuple(self.events.get(t, ()))
        if expected != events:
            index = next(
                (i for i, (a, b) in enumerate(zip(expected, events, strict=False)) if a != b),
                min(len(expected), len(events)),
            )
            got = events[index] if index < len(events) else "<none>"
            want = expected[index] if index < len(expected) else "<none>"
            self._fail(t, t + 1, "events", (index,), want, got)

    def _compare(self, step: int, row: int, name: str, recorded: Any, replayed: Any) -> None:
        recorded, replayed = np.asarray(recorded), np.asarray(replayed)
        if recorded.shape != replayed.shape or recorded.dtype != replayed.dtype:
            what = f"{recorded.dtype}{list(recorded.shape)}"
            got = f"{replayed.dtype}{list(replayed.shape)}"
            self._fail(step, row, name, (), what, got)
        if recorded.tobytes() == replayed.tobytes():
            return
        bits = f"u{recorded.itemsize}"
        flat = np.flatnonzero(recorded.reshape(-1).view(bits) != replayed.reshape(-1).view(bits))
        index = np.unravel_index(int(flat[0]), recorded.shape) if recorded.shape else ()
        self._fail(
            step,
            row,
            name,
            tuple(int(i) for i in index),
            recorded[index].item(),
            replayed[index].item(),
        )

    def _fail(
        self, step: int, row: int, name: str, index: tuple[int, ...], recorded: Any, replayed: Any
    ) -> None:
        raise ReplayDivergenceError(self.source, step, row, name, index, recorded, replayed)


def _bare_hash(value: str) -> str:
    return value.removeprefix("sha256:")
