from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import stable_baselines3 as sb3

from policies.protocol import Policy, SessionInfo
from policies.sb3_policy import SB3Policy
from tests.policies.compliance import PolicyServerCompliance
from tests.policies.doubles import action_space, observation_space, sample_observation


class _SpacesOnlyEnv(gymnasium.Env):  # type: ignore[type-arg]
    """Just enough of an env for SB3 to build a model of the right shape."""

    def __init__(self) -> None:
        self.observation_space = observation_space()
        self.action_space = action_space()

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


@functools.cache
def saved_model() -> Path:
    path = Path(tempfile.mkdtemp(prefix="sb3-")) / "reach_ppo.zip"
    sb3.PPO("MultiInputPolicy", _SpacesOnlyEnv(), n_steps=8, batch_size=8, seed=0).save(path)
    return path


class TestSB3PolicyServer(PolicyServerCompliance):
    def make_policy(self) -> Policy:
        return SB3Policy.load(saved_model())


def test_load_reads_algorithm_and_batch_matches_single() -> None:
    policy = SB3Policy.load(saved_model())
    assert policy.spec().policy_id == "sb3-ppo:reach_ppo"
    assert policy.spec().action.shape == (4,)
    policy.warmup()
    session = SessionInfo("s")
    rng = np.random.default_rng(0)
    observations = [sample_observation(rng) for _ in range(3)]
    single = [policy.act(session, o) for o in observations]
    batch = policy.act_batch([session] * 3, observations)
    np.testing.assert_allclose(np.stack(batch), np.stack(single), rtol=1e-5, atol=1e-6)
    assert all(a.dtype == np.float32 for a in batch)


def test_load_rejects_a_non_sb3_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(Exception, match="zip|not a"):
        SB3Policy.load(bogus)
