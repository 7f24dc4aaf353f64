"""`EpisodeRecorder`: a Gymnasium wrapper that records what an episode needs to be replayed.

It keeps, per step, the action the simulator received, the observation, reward, termination
flags, the numeric info values and the env's events; and every ``snapshot_every`` steps a state
snapshot (the env contract's ``save_snapshot``: state before that step's action).
`EpisodeRecorder.record` turns the buffers into an `EpisodeRecord` once the episode is over.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from testbed.episodes.env_contract import contract_of
from testbed.episodes.records import EpisodeMeta, EpisodeRecord

#: Per-step info values recorded as arrays (when the env provides them).
NUMERIC_INFO = ("tcp_speed_mps", "contact_force_n", "energy_j", "parts_sorted")


class EpisodeRecorder(gym.Wrapper):
    """Record the current episode of ``env``; `reset` starts a new recording.

    Args:
        env: The env to record (offering `envs.contract.CellContract`).
        snapshot_every: Steps between state snapshots (0 disables them).

    Raises:
        testbed.episodes.env_contract.EnvContractError: If the env does not offer the contract.
    """

    def __init__(self, env: gym.Env, snapshot_every: int = 100) -> None:
        super().__init__(env)
        self.contract = contract_of(env)
        self.snapshot_every = snapshot_every
        self._clear()
        self.seed: int | None = None
        self.reset_info: dict[str, Any] = {}

    def _clear(self) -> None:
        self._actions: list[np.ndarray] = []
        self._observations: list[dict[str, np.ndarray]] = []
        self._rewards: list[float] = []
        self._terminations: list[bool] = []
        self._truncations: list[bool] = []
        self._infos: dict[str, list[float]] = {}
        self._events: list[tuple[int, str]] = []
        self._snapshots: dict[int, bytes] = {}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start a new recording."""
        observation, info = self.env.reset(**kwargs)
        self._clear()
        self.seed = kwargs.get("seed")
        self.reset_info = dict(info)
        self._observations.append(_copy(observation))
        self._snapshot()
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and append the step to the recording."""
        applied = np.array(action, copy=True)
        observation, reward, terminated, truncated, info = self.env.step(action)
        step = len(self._actions)
        self._actions.append(applied)
        self._observations.append(_copy(observation))
        self._rewards.append(float(reward))
        self._terminations.append(bool(terminated))
        self._truncations.append(bool(truncated))
        for key in NUMERIC_INFO:
            if key in info:
                self._infos.setdefault(key, []).append(float(info[key]))
        self._events.extend((step, str(e)) for e in info.get("events", ()))
        self._events.extend((step, f"violation:{v}") for v in info.get("violations", ()))
        if not (terminated or truncated):
            self._snapshot()
        return observation, reward, terminated, truncated, info

    def _snapshot(self) -> None:
        step = len(self._actions)
        if self.snapshot_every > 0 and step % self.snapshot_every == 0:
            self._snapshots[step] = self.contract.save_snapshot()

    def record(self, meta: EpisodeMeta, latencies_ms: list[float] | None = None) -> EpisodeRecord:
        """The recorded episode with ``meta`` (events and snapshot interval filled in)."""
        steps = len(self._actions)
        # Episodes with no step still have a well-shaped (0, *shape) action array.
        shape = self.env.action_space.shape or ()
        actions = np.stack(self._actions) if steps else np.zeros((0, *shape), np.float32)
        observations = {
            name: np.stack([o[name] for o in self._observations]) for name in self._observations[0]
        }
        infos = {
            key: np.asarray(values, dtype=np.float64)
            for key, values in self._infos.items()
            if len(values) == steps
        }
        meta = replace(
            meta,
            steps=steps,
            events=tuple(self._events),
            snapshot_every=self.snapshot_every if self._snapshots else 0,
        )
        return EpisodeRecord(
            meta=meta,
            actions=actions,
            observations=observations,
            rewards=np.asarray(self._rewards, dtype=np.float64),
            terminations=np.asarray(self._terminations, dtype=bool),
            truncations=np.asarray(self._truncations, dtype=bool),
            infos=infos,
            latencies_ms=np.asarray(latencies_ms or [], dtype=np.float64),
            snapshots=dict(self._snapshots),
        )


def _copy(observation: Any) -> dict[str, np.ndarray]:
    if isinstance(observation, dict):
        return {k: np.array(v, copy=True) for k, v in observation.items()}
    return {"observation": np.array(observation, copy=True)}
