"""`policies.perturbed`: noisy demonstrations that replay bit for bit and never touch suction."""

from __future__ import annotations

import numpy as np
import pytest

from policies.perturbed import PerturbedPolicy
from policies.scripted_peg import scripted_peg_policy
from protos.specs import SessionInfo
from tests.policies.doubles import LinearPolicy


def _observation() -> dict[str, np.ndarray]:
    obs = {"ee_pos": np.array([0.4, 0.0, 0.3]), "ee_vel": np.zeros(3), "gripper": np.zeros(1),
           "holding": np.zeros(1), "peg_pos": np.array([0.0, -0.5, 0.15]),
           "peg_vel": np.zeros(3), "peg_axis": np.array([0.0, 0.0, 1.0]),
           "peg_size": np.array([0.03, 0.03, 0.07]), "hole_pos": np.array([0.2, -0.5, 0.1]),
           "hole_size": np.array([0.033, 0.033, 0.03]), "wrist_force": np.zeros(3),
           "time": np.zeros(1)}  # fmt: skip
    return {k: v.astype(np.float32) for k, v in obs.items()}


def _actions(policy: PerturbedPolicy, seed: int, steps: int = 20) -> np.ndarray:
    session = SessionInfo("s", "kr-changwon", episode=0, seed=seed)
    policy.reset(session)
    return np.array([policy.act(session, _observation()) for _ in range(steps)])


def test_noise_is_seeded_per_episode_zero_mean_and_leaves_suction_alone() -> None:
    noisy = PerturbedPolicy(scripted_peg_policy("kr-changwon"), std=0.05)
    clean = _actions(PerturbedPolicy(scripted_peg_policy("kr-changwon"), std=0.0), 7)
    first, again, other = _actions(noisy, 7), _actions(noisy, 7), _actions(noisy, 8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(first[:, 3], clean[:, 3])  # suction untouched
    residual = (first - clean)[:, :3]
    inside = np.abs(clean[:, :3]) < 0.8  # away from the clip at +-1
    assert 0.02 < residual[inside].std() < 0.1 and abs(residual[inside].mean()) < 0.03
    assert np.all(np.abs(first) <= 1.0)
    assert noisy.spec().policy_id == "scripted-peg@kr-changwon+noise0.05"


def test_bad_noise_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="std >= 0"):
        PerturbedPolicy(LinearPolicy(), std=-0.1)
