"""`RandomPolicy`: uniform random actions, reproducible per session seed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from policies.protocol import Capabilities, FieldSpec, PolicySpec, SessionInfo


class RandomPolicy:
    """Samples actions uniformly within the action bounds.

    Each session has its own generator seeded from the session's seed on every reset, so the
    same seed gives the same actions whatever other sessions do. Unbounded dimensions sample a
    standard normal.
    """

    def __init__(
        self,
        observation: Mapping[str, FieldSpec],
        action: FieldSpec,
        *,
        policy_id: str = "random",
        version: str = "1",
    ) -> None:
        """Create the policy.

        Args:
            observation: Observation fields the policy declares (it ignores their values).
            action: The action spec to sample from (a float dtype).
            policy_id: Reported in the spec.
            version: Reported in the spec.

        Raises:
            ValueError: If the action dtype is not a float type.
        """
        if np.dtype(action.dtype).kind != "f":
            raise ValueError(f"RandomPolicy: action.dtype: expected a float, got {action.dtype}")
        self._spec = PolicySpec(policy_id, version, dict(observation), action, Capabilities())
        self._rngs: dict[str, np.random.Generator] = {}
        shape = action.shape
        low = action.low if action.low is not None else np.full(shape, -np.inf)
        high = action.high if action.high is not None else np.full(shape, np.inf)
        self._bounded = np.isfinite(low) & np.isfinite(high)
        self._low = np.where(self._bounded, low, 0.0)
        self._span = np.where(self._bounded, high - low, 1.0)
        self._dtype = np.dtype(action.dtype)

    def spec(self) -> PolicySpec:
        """Return the declared spec."""
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        """Reseed this session's generator from the session seed."""
        self._rngs[session.session_id] = np.random.default_rng(session.seed)

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Sample one action for ``session``."""
        rng = self._rngs.get(session.session_id)
        if rng is None:
            raise KeyError(f"RandomPolicy.act: session {session.session_id!r} was never reset")
        uniform = self._low + self._span * rng.random(self._span.shape)
        action = np.where(self._bounded, uniform, rng.standard_normal(self._span.shape))
        return action.astype(self._dtype, copy=False)

    def close(self, session: SessionInfo) -> None:
        """Forget the session's generator."""
        self._rngs.pop(session.session_id, None)
