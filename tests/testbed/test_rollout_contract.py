"""The env contract the testbed checks once (`testbed.episodes.env_contract.contract_of`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from testbed.episodes.env_contract import EnvContractError, contract_of
from testbed.episodes.recorder import EpisodeRecorder
from testbed.episodes.rollout import run_episode
from testbed.link.policy import SessionInfo


class _PlainEnv(gym.Env):  # type: ignore[type-arg]
    """A Gymnasium env that is not a testbed cell env."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    control_dt = 0.05


@pytest.mark.parametrize("env_id", envs.ENV_IDS, ids=lambda i: i.split("/")[1])
def test_cell_envs_offer_the_contract(env_id: str) -> None:
    env = gym.make(env_id, site="jp-nagoya")
    try:
        contract = contract_of(env)
        assert contract.env_id == env_id and contract.env_kwargs["site"] == "jp-nagoya"
        assert contract.site_id == "jp-nagoya" and len(contract.bundle_hash) >= 64
        assert contract.control_dt == pytest.approx(env.unwrapped.control_dt)  # type: ignore[attr-defined]
        assert contract.control_dt > 0.0
    finally:
        env.close()


def test_a_plain_env_is_refused_naming_what_it_lacks() -> None:
    with pytest.raises(EnvContractError) as caught:
        contract_of(_PlainEnv())
    message = str(caught.value)
    for member in ("site_id", "bundle_hash", "episode_summary", "save_snapshot", "load_snapshot"):
        assert member in message
    assert "control_dt," not in message


def test_rollout_and_recorder_check_the_env_before_running() -> None:
    with pytest.raises(EnvContractError):
        EpisodeRecorder(_PlainEnv())
    with pytest.raises(EnvContractError):
        run_episode(_PlainEnv(), object(), SessionInfo("p", "s", "", 0, 0), policy_id="p@1")  # type: ignore[arg-type]
