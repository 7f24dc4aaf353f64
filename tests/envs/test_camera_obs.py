"""Camera observations (`envs.camera_obs`): image fields in the observation, off by default."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the env ids)
from envs.camera_obs import CameraObs

ENV = "Testbed/TouchPart-v0"
ACTION = np.array([0.4, -0.3, -0.6, 0.0], dtype=np.float32)


def _run(camera_obs: dict | None, steps: int = 3, seed: int = 5) -> list[dict[str, np.ndarray]]:
    env = gym.make(ENV, site="kr-changwon", camera_obs=camera_obs)
    try:
        observation, _ = env.reset(seed=seed)
        seen = [observation]
        for _ in range(steps):
            seen.append(env.step(ACTION)[0])
        return seen
    finally:
        env.close()


def test_off_by_default_and_the_state_fields_unchanged_with_images() -> None:
    plain = _run(None, steps=2)
    pictured = _run({"width": 32, "height": 24}, steps=2)
    assert "image" not in plain[0]
    for before, after in zip(plain, pictured, strict=True):
        assert set(after) == set(before) | {"image"}
        for name, value in before.items():  # rendering draws nothing from the episode's RNG
            np.testing.assert_array_equal(after[name], value)


def test_image_field_is_declared_rendered_each_step_and_deterministic() -> None:
    options = {"width": 32, "height": 24}
    first, second = _run(options), _run(options)
    env = gym.make(ENV, site="kr-changwon", camera_obs=options)
    space = env.observation_space["image"]
    env.close()
    assert (space.shape, space.dtype) == ((24, 32, 3), np.uint8)
    for a, b in zip(first, second, strict=True):
        assert a["image"].shape == (24, 32, 3) and a["image"].dtype == np.uint8
        np.testing.assert_array_equal(a["image"], b["image"])  # same seed and actions
    assert first[0]["image"].std() > 5.0  # a picture, not a blank frame
    moved = [np.abs(o["image"].astype(int) - first[0]["image"]).sum() for o in first[1:]]
    assert max(moved) > 0  # the arm moved in view: a new frame every step


def test_depth_and_a_camera_station() -> None:
    [observation] = _run({"station": "cam1", "width": 24, "height": 24, "depth": True}, steps=0)
    [cell] = _run({"width": 24, "height": 24}, steps=0)
    depth = observation["depth"]
    assert depth.shape == (24, 24) and depth.dtype == np.float32
    assert 0.02 <= depth.min() < depth.max() <= 10.0
    assert not np.array_equal(observation["image"], cell["image"])  # another viewpoint


def test_gymnasium_check_env_passes_with_images() -> None:
    env = gym.make(ENV, site="kr-changwon", camera_obs={"width": 16, "height": 16})
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_snapshot_restores_the_image_of_its_step() -> None:
    env = gym.make(ENV, site="kr-changwon", camera_obs={"width": 16, "height": 16}).unwrapped
    try:
        env.reset(seed=2)
        observation = env.step(ACTION)[0]
        blob = env.save_snapshot()
        env.step(ACTION)
        env.reset(seed=2)
        restored = env.load_snapshot(blob)
        np.testing.assert_array_equal(restored["image"], observation["image"])
    finally:
        env.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 4}, r"camera_obs.width: expected 8 .. 1024 pixels, got 4"),
        ({"height": "96"}, r"camera_obs.height: expected an integer, got '96'"),
        ({"depht": True}, r"unknown key\(s\) \['depht'\]"),
        ({"depth": "yes"}, r"camera_obs.depth: expected true or false"),
        ({"station": "cam9"}, r"'cam9' is not a camera station of site 'kr-changwon'"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make(ENV, site="kr-changwon", camera_obs=options)


def test_command_line_form() -> None:
    assert CameraObs.from_text("64x48") == CameraObs(None, 64, 48, False)
    assert CameraObs.from_text("96x96@cam1+depth") == CameraObs("cam1", 96, 96, True)
    assert CameraObs.parse({}) is None
    with pytest.raises(ValueError, match=r"expected WIDTHxHEIGHT\[@STATION\]\[\+depth\]"):
        CameraObs.from_text("96 by 96")
