"""A policy whose motion commands are perturbed by Gaussian noise: demonstrations for cloning.

Behaviour cloning from a deterministic controller sees only the states on the controller's
own path; the cloned policy's first small error takes it where it has no data, and errors
compound (e.g. a grasp a few millimetres off-centre, then a lift the data never showed).
Recording the controller while its executed motion is perturbed (DART, Laskey et al. 2017)
puts the demonstrations in the states around its path, and the closed-loop controller shows
how to come back. The recorded action is the perturbed one the simulator received; the noise
has zero mean and does not depend on the state, so a regression of actions on observations
(mean squared error) still converges to the controller's own action.

Only the first `dims` action components (the tool's motion) are perturbed; the suction
command is passed through, so the noise never drops a part. The noise of an episode is drawn
from a generator seeded with the wrapper's seed and the episode's seed (or its index), so a
recorded campaign replays bit for bit.

A policy config wraps any controller with Hydra's nested ``_target_``
(configs/policy/scripted_peg_kr_noisy.yaml)::

    factory:
      _target_: policies.perturbed.PerturbedPolicy
      inner: {_target_: policies.scripted_peg.scripted_peg_policy, site_id: kr-changwon}
      std: 0.05
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from policies.protocol import Policy, PolicySpec, SessionInfo


class PerturbedPolicy:
    """Wraps a `Policy`; adds N(0, `std`) to the first `dims` action components, then clips.

    Args:
        inner: The policy to perturb (its spec, resets and state are kept).
        std: Standard deviation of the noise, in action units (the action is in [-1, 1]).
        dims: How many leading action components are perturbed.
        seed: Seed of the noise, combined with each episode's seed.

    Raises:
        ValueError: If ``std`` is negative or ``dims`` is below 1.
    """

    def __init__(self, inner: Policy, std: float, dims: int = 3, seed: int = 0) -> None:
        if std < 0 or dims < 1:
            raise ValueError(f"perturbed policy: expected std >= 0, dims >= 1; got {std}, {dims}")
        self.inner, self.std, self.dims, self.seed = inner, float(std), int(dims), int(seed)
        self._noise: dict[str, np.random.Generator] = {}

    def spec(self) -> PolicySpec:
        """The inner spec, its id marked with the noise (``scripted-peg@kr-changwon+noise0.1``)."""
        spec = self.inner.spec()
        return replace(spec, policy_id=f"{spec.policy_id}+noise{self.std:g}")

    def reset(self, session: SessionInfo) -> None:
        """Reset the inner policy; the episode's noise generator from its seed (or index)."""
        self.inner.reset(session)
        episode = session.seed if session.seed is not None else session.episode
        self._noise[session.session_id] = np.random.default_rng([self.seed, int(episode)])

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The inner action with noise on its first `dims` components, clipped to [-1, 1]."""
        action = np.array(self.inner.act(session, observation), dtype=np.float32)
        rng = self._noise.setdefault(session.session_id, np.random.default_rng([self.seed, 0]))
        noise = rng.normal(0.0, self.std, self.dims)
        action[: self.dims] = np.clip(action[: self.dims] + noise, -1.0, 1.0)
        return action

    def close(self) -> None:
        """Close the inner policy; forget the generators."""
        self._noise.clear()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
