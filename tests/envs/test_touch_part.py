"""The TouchPart env: checkers, determinism, shared observation fields, success and metrics."""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.conveyor_sort import observation_space as conveyor_observation_space
from envs.sites import list_sites

SITES = list_sites()
ENV_ID = "Testbed/TouchPart-v0"


def make(site: str, **kwargs: object) -> gym.Env:
    return gym.make(ENV_ID, site=site, **kwargs).unwrapped


def reach(obs: Mapping[str, np.ndarray], suction: bool = False) -> np.ndarray:
    """A scripted reach: above the part first, then down onto the centre of its top face."""
    target = obs["part_pos"] + np.array([0.0, 0.0, obs["part_size"][2] / 2.0])
    delta = target - obs["ee_pos"]
    if np.hypot(delta[0], delta[1]) > 0.015:
        delta[2] = max(delta[2], delta[2] + 0.05)
    action = np.zeros(4, dtype=np.float32)
    action[:3] = np.clip(10.0 * delta, -1.0, 1.0)
    action[3] = 1.0 if suction else -1.0
    return action


def run(env: gym.Env, seed: int, suction: bool = False) -> dict:
    obs, _ = env.reset(seed=seed)
    while True:
        obs, _, terminated, truncated, info = env.step(reach(obs, suction))
        if terminated or truncated:
            return {**info["episode_metrics"], "terminated": terminated, "holding": obs["holding"]}


def test_registered_with_the_other_tasks() -> None:
    assert ENV_ID in envs.ENV_IDS and ENV_ID in gym.registry


@pytest.mark.parametrize("site", SITES)
def test_gymnasium_and_sb3_check_env_pass(site: str) -> None:
    env = make(site)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    env.close()


def test_observation_fields_are_those_of_conveyor_sort() -> None:
    env = make("kr-changwon")
    assert env.observation_space == conveyor_observation_space()
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    obs, _ = env.reset(seed=0)
    tool, _ = env.cell.arm.tool_state()
    np.testing.assert_allclose(obs["ee_pos"], tool - env.cell.arm.base_position, atol=1e-5)
    part = env.sim.base_pose(env.part_body)[0] - env.cell.arm.base_position
    np.testing.assert_allclose(obs["part_pos"], part, atol=1e-5)  # kr-changwon: no sensor noise
    assert obs["part_type"].sum() == 1.0 and np.linalg.norm(obs["bin_pos"]) > 0.1
    env.close()


@pytest.mark.parametrize("site", SITES)
def test_same_seed_gives_identical_episodes_whatever_ran_before(site: str) -> None:
    actions = np.random.default_rng(7).uniform(-1, 1, size=(60, 4)).astype(np.float32)

    def trace(env: gym.Env, seed: int) -> bytes:
        obs, _ = env.reset(seed=seed)
        chunks = [b"".join(v.tobytes() for v in obs.values())]
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            chunks.append(
                b"".join(v.tobytes() for v in obs.values()) + np.float64(reward).tobytes()
            )
            if terminated or truncated:
                break
        return b"".join(chunks)

    fresh = make(site)
    first = trace(fresh, 5)
    used = make(site)
    trace(used, 1)
    assert trace(used, 5) == first
    # The same part at the same place again: no contact state may leak between episodes.
    assert trace(used, 5) == first
    assert trace(fresh, 6) != first
    fresh.close()
    used.close()


def test_seeds_vary_the_part_and_its_place() -> None:
    env = make("us-austin")
    placements = set()
    for seed in range(8):
        env.reset(seed=seed)
        position = env.sim.base_pose(env.part_body)[0]
        placements.add((env.part_id, round(position[0], 3), round(position[1], 3)))
    assert len(placements) == 8
    assert len({p[0] for p in placements}) > 1
    env.close()


@pytest.mark.parametrize("site", SITES)
def test_a_scripted_reach_touches_the_part(site: str) -> None:
    env = make(site)
    for seed in range(3):
        metrics = run(env, seed)
        assert metrics["terminated"] and metrics["success_at_end"] and metrics["success_once"]
        assert metrics["final_distance_m"] <= env.success_radius_m
        assert metrics["parts_touched"] == 1 and metrics["time_to_touch_s"] > 0
        assert metrics["steps"] < env.max_steps and metrics["energy_j"] > 0
    env.close()


def test_suction_engaging_on_the_part_counts_as_a_touch() -> None:
    env = make("kr-changwon", success_radius_m=1e-4)  # only the grip can end the episode
    metrics = run(env, seed=0, suction=True)
    assert metrics["terminated"] and metrics["success_at_end"]
    assert metrics["holding"][0] == 1.0 and metrics["final_distance_m"] > 1e-4
    env.close()


def test_standing_still_is_truncated_with_a_failed_summary() -> None:
    env = make("jp-nagoya", time_limit_s=1.0)
    env.reset(seed=0)
    steps, truncated, info = 0, False, {}
    while not truncated:
        _, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        steps += 1
        assert reward < 0 and not terminated
    assert steps == env.max_steps == 20  # 1 s at jp-nagoya's 20 Hz
    summary = info["episode_metrics"]
    assert summary["success_once"] is False and summary["success_at_end"] is False
    for key in ("energy_j", "peak_tcp_speed_mps", "violations_per_1000_steps", "min_distance_m"):
        assert key in summary
    env.close()


def test_rejects_non_positive_settings() -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        make("kr-changwon", time_limit_s=0.0)
    with pytest.raises(ValueError, match="success_radius_m"):
        make("kr-changwon", success_radius_m=-1.0)


def test_renders_with_the_same_options_as_conveyor_sort() -> None:
    env = make("kr-changwon", render_mode="rgb_array", render_size=(64, 48), renderer="tiny",
               camera="cam1")  # fmt: skip
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame is not None and frame.shape == (48, 64, 3) and frame.std() > 0
