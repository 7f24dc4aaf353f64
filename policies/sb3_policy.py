"""`SB3Policy`: serve a Stable-Baselines3 model (PPO, SAC, TD3, A2C, DDPG) as a `Policy`.

Needs ``stable_baselines3`` (imported lazily). The model's observation space must be a Dict
of Box spaces and its action space a Box: the same shapes the testbed's envs publish.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.protocol import Capabilities, FieldSpec, PolicySpec, SessionInfo

_ALGORITHMS = ("PPO", "SAC", "TD3", "A2C", "DDPG")


class SB3Policy:
    """Wraps a loaded SB3 model; ``act_batch`` runs one forward pass for all sessions."""

    def __init__(
        self, model: Any, *, policy_id: str = "sb3", version: str = "1", deterministic: bool = True
    ) -> None:
        """Wrap ``model``.

        Raises:
            TypeError: If the model's spaces are not a Dict of Box and a Box.
        """
        spaces = getattr(model.observation_space, "spaces", None)
        if not isinstance(spaces, Mapping):
            raise TypeError(
                "SB3Policy: observation_space: expected a Dict space, "
                f"got {model.observation_space}"
            )
        self._model = model
        self._deterministic = deterministic
        self._spec = PolicySpec(
            policy_id=policy_id,
            version=version,
            observation={name: FieldSpec.from_box(box) for name, box in spaces.items()},
            action=FieldSpec.from_box(model.action_space),
            capabilities=Capabilities(streaming=True, batching=True, max_batch=256),
        )

    @classmethod
    def load(
        cls, path: str | Path, *, algorithm: str | None = None, deterministic: bool = True
    ) -> SB3Policy:
        """Load a model file saved by ``model.save(path)``.

        Args:
            path: The ``.zip`` file.
            algorithm: One of PPO, SAC, TD3, A2C, DDPG; by default read from the file's policy
                class (SAC and TD3/DDPG policies are distinct; actor-critic ones load as PPO,
                which predicts the same for A2C models).
            deterministic: Use the policy's mean action.

        Raises:
            ValueError: If the algorithm is unknown or cannot be inferred.
        """
        from stable_baselines3.common.save_util import load_from_zip_file

        if algorithm is None:
            data, _, _ = load_from_zip_file(path, device="cpu")
            algorithm = _infer_algorithm(
                getattr((data or {}).get("policy_class"), "__module__", "")
            )
        if algorithm.upper() not in _ALGORITHMS:
            raise ValueError(
                f"sb3:{path}: algorithm: expected one of {_ALGORITHMS}, got {algorithm}"
            )
        name = algorithm.upper()
        model = getattr(importlib.import_module("stable_baselines3"), name).load(path, device="cpu")
        policy_id = f"sb3-{name.lower()}:{Path(path).stem}"
        return cls(model, policy_id=policy_id, deterministic=deterministic)

    def spec(self) -> PolicySpec:
        """Return the spaces of the wrapped model."""
        return self._spec

    def warmup(self) -> None:
        """Run one forward pass so the first real step is not slow."""
        zeros = {n: np.zeros(f.shape, f.dtype) for n, f in self._spec.observation.items()}
        self._model.predict(zeros, deterministic=True)

    def reset(self, session: SessionInfo) -> None:
        """Feed-forward SB3 policies keep no per-episode state."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predict one action."""
        action, _ = self._model.predict(dict(observation), deterministic=self._deterministic)
        return np.asarray(action, dtype=self._spec.action.dtype)

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        """Predict actions for several sessions in one forward pass."""
        stacked = {n: np.stack([o[n] for o in observations]) for n in self._spec.observation}
        actions, _ = self._model.predict(stacked, deterministic=self._deterministic)
        return list(np.asarray(actions, dtype=self._spec.action.dtype))


def _infer_algorithm(policy_module: str) -> str:
    for name in ("SAC", "TD3"):
        if f".{name.lower()}." in f"{policy_module}.":
            return name
    if policy_module.startswith("stable_baselines3.common.policies"):
        return "PPO"  # actor-critic policies (PPO, A2C)
    raise ValueError(f"cannot tell the SB3 algorithm of policy module {policy_module!r}")
