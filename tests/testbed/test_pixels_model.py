"""The shipped pixels-in model (models/bc_touch_pixels_kr): loads, states its image field as the
env publishes it, and acts over gRPC on 127.0.0.1 from rendered observations (raw and PNG)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the env ids)
from policies import serve
from policies.sb3_policy import SB3Policy
from protos.specs import FieldSpec, SessionInfo
from testbed.link.client import RemotePolicy
from tests.testbed.servers import REPO

FOLDER = REPO / "models" / "bc_touch_pixels_kr"
CAMERA = {"station": "cam2", "width": 64, "height": 64}


def test_metadata_and_recipe_agree() -> None:
    meta = json.loads((FOLDER / "model.json").read_text())
    recipe = (REPO / "configs" / "train" / "bc_touch_pixels_kr.yaml").read_text()
    assert meta["env_kwargs"] == {"camera_obs": CAMERA}
    assert sorted(meta["observation"]) == ["ee_pos", "ee_vel", "image"]  # no part position
    assert meta["bc"]["dataset"] == "testbed/touch-part/kr-pixels-v1" and meta["method"] == "bc"
    assert meta["train_config"]["algo"]["features_extractor"] == "policies.vision:KeypointExtractor"
    assert "camera_obs: {station: cam2, width: 64, height: 64}" in recipe
    assert f"gradient_steps: {meta['bc']['gradient_steps']}" in recipe
    assert meta["final_eval"]["episodes"] == 50 and meta["final_eval"]["success_rate"] >= 0.8


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_served_model_acts_on_rendered_images(encoding: str) -> None:
    policy = SB3Policy.load(FOLDER / "model.zip")  # checks the zip against model.json's sha256
    assert policy.spec().observation["image"] == FieldSpec((64, 64, 3), "uint8", 0, 255)
    env = gym.make("Testbed/TouchPart-v0", site="kr-changwon", camera_obs=CAMERA)
    server = serve(policy, "127.0.0.1:0")
    try:
        assert server.wait_until_serving(30)
        session = SessionInfo(f"pixels-{encoding}", site="kr-changwon", seed=0)
        with RemotePolicy(server.address, observation_space=env.observation_space,
                          action_space=env.action_space,  # type: ignore[arg-type]
                          image_encoding=encoding, deadline_s=10.0) as remote:  # type: ignore[arg-type]  # fmt: skip
            remote.reset(session)
            observation, _ = env.reset(seed=0)
            for _ in range(3):
                action = remote.act(session, observation)
                local = policy.act(session, observation)
                np.testing.assert_allclose(action, local, atol=1e-6)  # the same pixels arrived
                assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
                observation = env.step(action)[0]
    finally:
        server.stop(0)
        env.close()
