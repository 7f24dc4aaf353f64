"""`policies.vision`: the keypoint CNN says where things are, and models with it save and serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th

from policies.protocol import SessionInfo
from policies.sb3_policy import SB3Policy
from policies.vision import KeypointExtractor, SpatialSoftArgmax

IMAGE = gymnasium.spaces.Box(0, 255, (32, 32, 3), np.uint8)
STATE = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)


def test_soft_argmax_finds_a_hot_pixel_in_image_coordinates() -> None:
    argmax = SpatialSoftArgmax(height=5, width=9)
    maps = th.zeros(1, 2, 5, 9)
    maps[0, 0, 0, 8] = 100.0  # top right: x = +1, y = -1
    maps[0, 1, 2, 4] = 100.0  # the centre
    coords = argmax(maps)[0].detach().numpy()
    np.testing.assert_allclose(coords, [1.0, -1.0, 0.0, 0.0], atol=1e-6)
    uniform = argmax(th.zeros(1, 1, 5, 9))[0].detach().numpy()
    np.testing.assert_allclose(uniform, [0.0, 0.0], atol=1e-6)  # no evidence: the middle


def test_extractor_learns_where_an_object_is() -> None:
    """A keypoint and a linear head learn a square's column to within a pixel in 300 steps."""
    th.manual_seed(0)
    space = gymnasium.spaces.Dict({"image": gymnasium.spaces.Box(0, 255, (3, 32, 32), np.uint8)})
    extractor = KeypointExtractor(space, channels=8, keypoints=4)
    head = th.nn.Linear(extractor.features_dim, 1)
    optimizer = th.optim.Adam([*extractor.parameters(), *head.parameters()], lr=3e-3)

    def batch(size: int) -> tuple[th.Tensor, th.Tensor]:
        columns = th.randint(3, 29, (size,))
        images = th.zeros(size, 3, 32, 32)
        for i, column in enumerate(columns.tolist()):
            images[i, :, 14:18, column - 2 : column + 2] = 1.0
        return images, columns.float().unsqueeze(1) / 32.0

    for _ in range(300):
        images, columns = batch(32)
        loss = (head(extractor({"image": images})) - columns).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, columns = batch(64)
    with th.no_grad():
        error_px = (head(extractor({"image": images})) - columns).abs().mean().item() * 32
    assert error_px < 1.0


def test_extractor_refuses_a_space_without_an_image() -> None:
    with pytest.raises(ValueError, match=r"an image field .* among \['ee_pos'\], got none"):
        KeypointExtractor(gymnasium.spaces.Dict({"ee_pos": STATE}))
    with pytest.raises(ValueError, match="channels, keypoints >= 1; got 0, 4"):
        KeypointExtractor(gymnasium.spaces.Dict({"image": IMAGE}), channels=0, keypoints=4)


class _ImageEnv(gymnasium.Env):  # type: ignore[type-arg]
    observation_space = gymnasium.spaces.Dict({"ee_pos": STATE, "image": IMAGE})
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def test_a_model_with_the_extractor_is_saved_loaded_and_served(tmp_path: Path) -> None:
    kwargs = {"features_extractor_class": KeypointExtractor,
              "features_extractor_kwargs": {"channels": 4, "keypoints": 3}}  # fmt: skip
    model = sb3.PPO("MultiInputPolicy", _ImageEnv(), n_steps=8, batch_size=8, seed=0,
                    policy_kwargs=kwargs)  # fmt: skip
    assert isinstance(model.policy.pi_features_extractor, KeypointExtractor)
    assert model.policy.pi_features_extractor.features_dim == 2 * 3 + 3
    model.save(tmp_path / "model.zip")
    policy = SB3Policy.load(tmp_path / "model.zip")
    observation = _ImageEnv.observation_space.sample()
    session = SessionInfo("s")
    policy.reset(session)
    action = policy.act(session, observation)
    expected, _ = model.predict(observation, deterministic=True)
    np.testing.assert_allclose(action, expected, atol=1e-6)
