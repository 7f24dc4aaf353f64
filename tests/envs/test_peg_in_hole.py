"""The PegInHole env: checkers, determinism, snapshots, site data, the scripted controller."""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.factory.task_sections import PegInHoleSection
from envs.peg_in_hole import PegInHoleEnv
from envs.sites import list_sites, load_site
from policies.scripted_peg import ScriptedPegController
from protos.specs import SessionInfo

SITES = list_sites()
ENV_ID = "Testbed/PegInHole-v0"
MAX_STEPS = 1500  # every site's time limit is shorter; a bound on every loop here
# kr-changwon's few episodes run by default, the other sites' as slow tests; 50 each: nightly.
QUICK_HOME = [s if s == "kr-changwon" else pytest.param(s, marks=pytest.mark.slow) for s in SITES]


def make(site: str, **kwargs: Any) -> PegInHoleEnv:
    env = gym.make(ENV_ID, site=site, **kwargs).unwrapped
    assert isinstance(env, PegInHoleEnv)
    return env


def scripted_episode(env: PegInHoleEnv, site: str, seed: int) -> tuple[dict, list[np.ndarray]]:
    """One episode of the site's scripted controller: its summary and its actions."""
    controller = ScriptedPegController(site)
    session = SessionInfo("test", site=site, seed=seed)
    controller.reset(session)
    obs, _ = env.reset(seed=seed)
    actions = []
    for _ in range(MAX_STEPS):
        action = controller.act(session, obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info["episode_metrics"], actions
    raise AssertionError("the episode did not end within MAX_STEPS")


def trace(env: PegInHoleEnv, seed: int, actions: np.ndarray) -> bytes:
    obs, _ = env.reset(seed=seed)
    chunks = [b"".join(v.tobytes() for v in obs.values())]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        chunks.append(b"".join(v.tobytes() for v in obs.values()) + np.float64(reward).tobytes())
        if terminated or truncated:
            break
    return b"".join(chunks)


def test_registered_with_the_other_tasks() -> None:
    assert ENV_ID in envs.ENV_IDS and ENV_ID in gym.registry


@pytest.mark.parametrize("site", SITES)
def test_gymnasium_and_sb3_check_env_pass(site: str) -> None:
    env = make(site)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    env.close()


def test_observation_has_the_shared_fields_and_the_peg_and_hole() -> None:
    env = make("kr-changwon")
    obs, _ = env.reset(seed=0)
    assert list(obs) == [
        *("ee_pos", "ee_vel", "gripper", "holding", "peg_pos", "peg_vel", "peg_axis"),
        *("peg_size", "hole_pos", "hole_size", "wrist_force", "time"),
    ]
    assert env.cell is not None
    base = np.asarray(env.cell.arm.base_position)
    peg = np.asarray(env.sim.base_pose(env.task.peg_body)[0]) - base
    np.testing.assert_allclose(obs["peg_pos"], peg, atol=1e-5)  # kr-changwon: no sensor noise
    np.testing.assert_allclose(obs["hole_pos"], env.task.mouth - base, atol=1e-5)
    np.testing.assert_allclose(obs["peg_axis"], (0.0, 0.0, 1.0), atol=1e-3)
    assert not obs["wrist_force"].any() and obs["holding"][0] == 0.0
    env.close()


@pytest.mark.parametrize("site", SITES)
def test_same_seed_and_actions_give_bit_identical_observations(site: str) -> None:
    actions = np.random.default_rng(3).uniform(-1, 1, size=(40, 4)).astype(np.float32)
    first, second = make(site), make(site)
    make(site).reset(seed=99)  # another env in the process changes nothing
    second.reset(seed=5)  # nor does an earlier episode of the same env
    assert trace(first, 11, actions) == trace(second, 11, actions)
    first.close()
    second.close()


def test_snapshot_restores_mid_insertion_bit_for_bit() -> None:
    site = "us-austin"  # sensor noise, latency, dropout and a moving hole: all in the snapshot
    env = make(site)
    _, actions = scripted_episode(env, site, seed=2)
    cut = len(actions) // 2
    obs, _ = env.reset(seed=2)
    for action in actions[:cut]:
        obs, *_ = env.step(action)
    blob = env.save_snapshot()
    rest = [env.step(a)[0] for a in actions[cut:]]
    fresh = make(site)
    fresh.reset(seed=2)
    restored = fresh.load_snapshot(blob)
    assert all(np.array_equal(restored[k], obs[k]) for k in obs)
    for action, expected in zip(actions[cut:], rest, strict=True):
        got = fresh.step(action)[0]
        assert all(np.array_equal(got[k], expected[k]) for k in got)
    other = make(site)
    other.reset(seed=3)  # another hole offset
    with pytest.raises(ValueError, match="hole offset"):
        other.load_snapshot(blob)


def test_clearance_chamfer_and_peg_differ_per_site_from_data() -> None:
    sections = {site: load_site(site).site.task_section(PegInHoleSection) for site in SITES}
    assert sections["kr-changwon"].clearance_m == pytest.approx(0.0015)
    assert sections["kr-changwon"].chamfer_m > 0
    assert sections["jp-nagoya"].clearance_m == pytest.approx(0.0003)
    assert sections["jp-nagoya"].chamfer_m == 0
    assert sections["us-austin"].clearance_m == pytest.approx(0.001)
    assert sections["us-austin"].hole_pose_noise_m > 0
    for site, section in sections.items():
        env = make(site)
        obs, _ = env.reset(seed=0)
        gap = section.peg_size_m[0] + 2 * section.clearance_m
        np.testing.assert_allclose(obs["hole_size"], (gap, gap, section.hole_depth_m), rtol=1e-6)
        env.close()


def test_hole_moves_per_episode_only_where_the_site_says() -> None:
    noisy, fixed = make("us-austin"), make("kr-changwon")
    offsets = {tuple(noisy.reset(seed=s)[1]["hole_offset_m"]) for s in range(3)}
    assert len(offsets) == 3 and all(max(map(abs, o)) <= 0.005 for o in offsets)
    assert {tuple(fixed.reset(seed=s)[1]["hole_offset_m"]) for s in range(3)} == {(0.0, 0.0)}


def test_peg_stands_off_its_nest_centre_per_episode_only_where_the_site_says() -> None:
    """The nest's play (peg_pose_noise_m) moves the peg per seed, within the play, at its height."""
    loose, tight = make("kr-changwon"), make("us-austin")  # 3 mm of play; none
    play = load_site("kr-changwon").site.task_section(PegInHoleSection).peg_pose_noise_m
    assert play == pytest.approx(0.003)
    starts = []
    for seed in range(4):
        offset = loose.reset(seed=seed)[1]["peg_offset_m"]
        assert max(map(abs, offset)) <= play
        starts.append(tuple(loose.unwrapped.task.peg_pos.round(6)))
    assert len(set(starts)) == 4 and len({z for *_, z in starts}) == 1
    assert loose.reset(seed=1)[1]["peg_offset_m"] == loose.reset(seed=1)[1]["peg_offset_m"]
    assert {tuple(tight.reset(seed=s)[1]["peg_offset_m"]) for s in range(3)} == {(0.0, 0.0)}


def test_a_peg_whose_play_leaves_its_nest_is_refused() -> None:
    too_loose = {"peg_size_m": (0.06, 0.06, 0.07), "peg_pose_noise_m": 0.015}  # 9 cm, nest 8
    with pytest.raises(ValueError, match=r"the peg \(0\.090 m across with its pose noise\)"):
        make("kr-changwon", overrides=too_loose)


def test_idle_episode_ends_at_the_time_limit_with_the_reason() -> None:
    env = make("kr-changwon", overrides={"time_limit_s": 1.0})
    env.reset(seed=0)
    for _ in range(MAX_STEPS):
        *_, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        if terminated or truncated:
            break
    summary = info["episode_metrics"]
    assert truncated and summary["outcome"] == "time limit: peg not picked"
    assert not summary["success_at_end"] and math.isnan(summary["insertion_time_s"])


def test_a_section_naming_a_non_fixture_is_refused() -> None:
    with pytest.raises(ValueError, match="not a fixture station"):
        make("kr-changwon", overrides={"hole_station": "bin1"})


@pytest.mark.parametrize("site", QUICK_HOME)
def test_scripted_controller_assembles_at_its_home_site(site: str) -> None:
    env = make(site)
    for seed in range(3):
        summary, _ = scripted_episode(env, site, seed)
        assert summary["outcome"] == "success", (seed, summary["outcome"])
        assert summary["success_at_end"] and summary["success_once"]
        assert 0 < summary["insertion_time_s"] <= summary["sim_time_s"]
        assert summary["insertion_depth_m"] >= 0.9 * summary["hole_depth_m"]
        assert summary["peak_wrist_force_n"] >= summary["mean_wrist_force_n"] > 0
    env.close()


@pytest.mark.nightly  # 50 whole episodes per site: minutes each
@pytest.mark.parametrize("site", SITES)
def test_scripted_controller_reaches_90_percent_over_50_episodes_at_home(site: str) -> None:
    env = make(site)
    start, successes = time.monotonic(), 0
    for seed in range(50):
        summary, _ = scripted_episode(env, site, 1000 + seed)
        successes += bool(summary["success_at_end"])
        assert time.monotonic() - start < 600, "50 episodes should take well under 10 minutes"
    assert successes >= 45, f"{successes}/50 at {site}"
    env.close()
