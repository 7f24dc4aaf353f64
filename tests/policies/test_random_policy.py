from __future__ import annotations

import numpy as np
import pytest

from policies.protocol import FieldSpec, Policy, SessionInfo
from policies.random_policy import RandomPolicy
from tests.policies.compliance import PolicyServerCompliance
from tests.policies.doubles import sample_observation, specs


def make_random() -> RandomPolicy:
    observation, action = specs()
    return RandomPolicy(observation, action)


class TestRandomPolicyServer(PolicyServerCompliance):
    def make_policy(self) -> Policy:
        return make_random()


def test_same_seed_same_actions_whatever_other_sessions_do() -> None:
    policy = make_random()
    obs = sample_observation(np.random.default_rng(0))
    a, b, other = SessionInfo("a", seed=5), SessionInfo("b", seed=5), SessionInfo("c", seed=6)
    for session in (a, b, other):
        policy.reset(session)
    first = [policy.act(a, obs) for _ in range(3)]
    policy.act(other, obs)
    second = [policy.act(b, obs) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    assert not np.array_equal(policy.act(other, obs), policy.act(a, obs))


def test_actions_respect_bounds_and_unbounded_dims_sample_normal() -> None:
    observation, _ = specs()
    action = FieldSpec((3,), "float32", [-0.5, -np.inf, 0.0], [0.5, np.inf, 0.1])
    policy = RandomPolicy(observation, action)
    session = SessionInfo("s", seed=1)
    policy.reset(session)
    samples = np.stack([policy.act(session, {}) for _ in range(200)])
    assert samples.dtype == np.float32
    assert samples[:, 0].min() >= -0.5 and samples[:, 0].max() <= 0.5
    assert samples[:, 2].min() >= 0.0 and samples[:, 2].max() <= 0.1
    assert samples[:, 1].std() > 0.5


def test_rejects_integer_action_and_unknown_session() -> None:
    observation, _ = specs()
    with pytest.raises(ValueError, match="action.dtype"):
        RandomPolicy(observation, FieldSpec((2,), "int64"))
    with pytest.raises(KeyError, match="never reset"):
        make_random().act(SessionInfo("x"), {})
