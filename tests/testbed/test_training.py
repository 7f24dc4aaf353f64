"""`testbed train`: configs, site mix, and train -> save -> serve over gRPC -> evaluate."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs  # noqa: F401  # registers the env ids
from envs.sites import load_site
from policies.sb3_policy import METADATA_FORMAT as ADAPTER_FORMAT
from testbed.cli.train import config_dir
from testbed.episodes.rollout import run_episode
from testbed.errors import UsageError
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from testbed.training.config import TrainConfig, register_train_configs
from testbed.training.envs import SiteMixEnv, make_vec_env
from testbed.training.extractors import extractor_class
from testbed.training.train import METADATA_FORMAT, build_model
from tests.testbed.servers import REPO, start_cli_server, stop

ENV_ID = "Testbed/TouchPart-v0"
PRESETS = sorted(p.stem for p in (config_dir() / "train").glob("*.yaml"))
TINY = [
    "train=ppo_touch_kr",
    "train.total_timesteps=2048",
    "train.algo.hyperparameters.n_steps=256",
    "train.algo.hyperparameters.batch_size=64",
    "train.algo.hyperparameters.n_epochs=2",
    "train.eval_freq=1024",
    "train.eval_episodes=2",
    "train.final_eval_episodes=3",
    "train.checkpoint_freq=1024",
    "train.progress_bar=false",
    "train.seed=3",
]


def compose_train(*overrides: str) -> TrainConfig:
    register_train_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose("train", overrides=list(overrides))
    train_cfg = OmegaConf.to_object(cfg.train)
    assert isinstance(train_cfg, TrainConfig)
    return train_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO model trained through the real command line."""
    out = tmp_path_factory.mktemp("train")
    command = [sys.executable, "-m", "testbed", "train", *TINY, f"train.out_dir={out}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "success at kr-changwon" in done.stdout
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_builds_its_model(preset: str) -> None:
    cfg = compose_train(f"train={preset}")
    cfg.check()
    assert cfg.env_id in envs.ENV_IDS and cfg.algo.policy == "MultiInputPolicy"
    vec_env = make_vec_env(
        cfg.env_id, cfg.train_sites, cfg.env_kwargs, cfg.obs_keys, 1, subproc=False
    )
    try:
        model = build_model(cfg, vec_env)  # rejects hyperparameters the algorithm lacks
        assert type(model).__name__ == cfg.algo.name
        assert set(model.observation_space.spaces) == set(cfg.obs_keys or envs_fields())
    finally:
        vec_env.close()


def envs_fields() -> list[str]:
    return list(envs.conveyor_sort.observation_space().spaces)


def test_config_errors_name_the_field() -> None:
    cfg = compose_train("train.algo.name=DQN", "train.n_envs=0", "train.vec_env=ray")
    expected = r"algo.name: .*'DQN'; vec_env: .*'ray'; n_envs: expected >= 1, got 0"
    with pytest.raises(ValueError, match=expected):
        cfg.check()
    bad = compose_train("+train.algo.hyperparameters.no_such_argument=1")
    vec_env = make_vec_env(ENV_ID, ["kr-changwon"], {}, [], 1, subproc=False)
    try:
        with pytest.raises(ValueError, match="algo.hyperparameters: PPO rejected"):
            build_model(bad, vec_env)
    finally:
        vec_env.close()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("policies.vision:SpatialSoftArgmax", "BaseFeaturesExtractor subclass, got "
         "'policies.vision:SpatialSoftArgmax' (another kind of class)"),
        ("policies.vision:NoSuchExtractor", "got 'policies.vision:NoSuchExtractor' "
         "(no 'NoSuchExtractor' in policies.vision)"),
        ("no_such_module:Extractor", "cannot import 'no_such_module' (No module named "),
    ],
)  # fmt: skip
def test_a_features_extractor_is_named_as_module_colon_class(path: str, expected: str) -> None:
    """The recipe names its extractor; a bad name is a UsageError (one line in the CLI)."""
    assert extractor_class("policies.vision:KeypointExtractor").__name__ == "KeypointExtractor"
    with pytest.raises(UsageError, match="algo.features_extractor: .*" + re.escape(expected)):
        extractor_class(path)
    malformed = compose_train("train.algo.features_extractor=policies.vision")
    with pytest.raises(ValueError, match=r"expected module:Class .* got 'policies.vision'"):
        malformed.check()


def test_config_dir_can_be_moved_and_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_CONFIG_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train.yaml: not found.*TESTBED_CONFIG_DIR"):
        config_dir()
    (tmp_path / "train.yaml").write_text("defaults: []\n")
    assert config_dir() == tmp_path.resolve()


def test_site_mix_draws_sites_per_episode_reproducibly() -> None:
    sites = ["kr-changwon", "jp-nagoya", "us-austin"]

    def draws(seed: int) -> list[tuple[str, bytes]]:
        env = SiteMixEnv(ENV_ID, sites)
        out = []
        for episode in range(8):
            obs, info = env.reset(seed=seed if episode == 0 else None)
            out.append((info["site"], obs["part_pos"].tobytes()))
        env.close()
        return out

    first = draws(4)
    assert draws(4) == first
    assert {site for site, _ in first} == set(sites)
    with pytest.raises(ValueError, match="at least one site"):
        SiteMixEnv(ENV_ID, [])


def test_subprocess_workers_build_their_own_site_mix() -> None:
    sites = ["kr-changwon", "us-austin"]
    vec_env = make_vec_env(ENV_ID, sites, {}, ["ee_pos", "part_pos"], 2, subproc=True)
    try:
        vec_env.seed(0)
        obs = vec_env.reset()
        assert set(obs) == {"ee_pos", "part_pos"} and obs["ee_pos"].shape == (2, 3)
        obs, rewards, _, _ = vec_env.step(np.zeros((2, 4), dtype=np.float32))
        assert rewards.shape == (2,) and np.all(rewards < 0)
        assert vec_env.get_attr("sites") == [sites, sites]
    finally:
        vec_env.close()


def test_training_writes_model_metadata_and_logs(trained: Path) -> None:
    for name in ("model.zip", "model.json", "config.yaml", "train.log", "progress.csv", "eval.csv"):
        assert (trained / name).is_file(), name
    assert (trained / "monitor" / "0.monitor.csv").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == [
        "model_1024_steps.zip",
        "model_2048_steps.zip",
    ]
    meta = json.loads((trained / "model.json").read_text())
    assert meta["format"] == METADATA_FORMAT == ADAPTER_FORMAT
    assert meta["env_id"] == ENV_ID and meta["home_site"] == "kr-changwon"
    assert meta["algorithm"] == "PPO" and meta["seed"] == 3 and meta["steps"] >= 2048
    assert list(meta["observation"]) == sorted(["ee_pos", "ee_vel", "part_pos", "part_size"])
    assert meta["observation"]["part_size"]["shape"] == [3]
    assert meta["action"] == {
        "shape": [4],
        "dtype": "float32",
        "low": [-1.0] * 4,
        "high": [1.0] * 4,
    }
    digest = hashlib.sha256((trained / "model.zip").read_bytes()).hexdigest()
    assert meta["hashes"]["model_sha256"] == digest and meta["version"] == digest[:12]
    bundle = load_site("kr-changwon").bundle_hash
    assert meta["hashes"]["site_bundles"] == {"kr-changwon": bundle}
    assert meta["final_eval"]["episodes"] == 3 and 0.0 <= meta["final_eval"]["success_rate"] <= 1
    assert meta["train_config"]["algo"]["hyperparameters"]["n_steps"] == 256
    assert meta["policy_id"] == "sb3-ppo-touchpart-v0@kr-changwon"
    rows = (trained / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("timesteps,") and len(rows) == 3  # evaluations at 1024 and 2048
    assert "final evaluation at kr-changwon" in (trained / "train.log").read_text()


def test_served_model_answers_the_handshake_and_runs_episodes(trained: Path) -> None:
    process, address = start_cli_server(f"sb3:{trained / 'model.zip'}")
    meta = json.loads((trained / "model.json").read_text())
    env = gym.make(ENV_ID, site="kr-changwon")
    try:
        # The env offers all its fields; the model reads the four it was trained on.
        policy = RemotePolicy(
            address, observation_space=env.observation_space, action_space=env.action_space
        )
        with policy:
            spec = policy.spec()
            assert (spec.policy_id, spec.version) == (meta["policy_id"], meta["version"])
            assert sorted(spec.observation) == list(meta["observation"])
            results = [
                run_episode(
                    env,
                    policy,
                    SessionInfo("train-test", "kr-changwon", "", i, 100 + i),
                    max_steps=25,
                )
                for i in range(3)
            ]
        for result in results:
            assert result.faults == [] and result.steps > 0
            assert result.policy_id == f"{meta['policy_id']}@{meta['version']}"
    finally:
        env.close()
        stop(process)


def test_served_actions_are_the_models_deterministic_actions(trained: Path) -> None:
    from stable_baselines3 import PPO

    from policies.sb3_policy import SB3Policy

    model = PPO.load(trained / "model.zip", device="cpu")
    policy = SB3Policy.load(trained / "model.zip")
    env = gym.make(ENV_ID, site="us-austin")
    obs, _ = env.reset(seed=0)
    session = SessionInfo("s")
    for _ in range(5):
        subset = {k: obs[k] for k in model.observation_space.spaces}
        expected, _ = model.predict(subset, deterministic=True)
        action = policy.act(session, obs)
        np.testing.assert_array_equal(action, expected.astype(np.float32))
        obs, *_ = env.step(action)
    env.close()


def test_shipped_example_model_loads_and_touches_parts_at_home() -> None:
    from policies.sb3_policy import SB3Policy

    path = REPO / "models" / "ppo_touch_kr" / "model.zip"
    policy = SB3Policy.load(path)  # checks the zip against model.json's sha256
    meta = json.loads(path.with_suffix(".json").read_text())
    assert policy.home_site == meta["home_site"] == "kr-changwon"
    assert meta["final_eval"]["episodes"] >= 100 and meta["final_eval"]["success_rate"] >= 0.8
    env = gym.make(meta["env_id"], site="kr-changwon")
    results = [
        run_episode(env, policy, SessionInfo("shipped", "kr-changwon", "", i, 5000 + i))
        for i in range(10)
    ]
    env.close()
    assert sum(r.success for r in results) >= 8


@pytest.mark.parametrize(
    ("override", "expected", "hint"),
    [
        (
            "train.n_envs=0",
            "error: train config: n_envs: expected >= 1, got 0",
            "hint: testbed train --cfg job",
        ),
        (
            "train.bc.dataset=testbed/no-such/v0",
            "error: bc.dataset 'testbed/no-such/v0': not found in ",
            "hint: testbed export minari outputs/campaigns/NAME --dataset-id testbed/no-such/v0",
        ),
    ],
)
def test_a_bad_training_config_is_one_error_line_without_traceback(
    tmp_path: Path, override: str, expected: str, hint: str
) -> None:
    """Values only the trainer checks (not Hydra's composer) are reported like every CLI error."""
    out = f"train.out_dir={tmp_path}"
    roots = f"train.bc.datasets_root={tmp_path / 'datasets'}"
    command = [sys.executable, "-m", "testbed", "train", override, roots, out]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr
    assert expected in done.stderr and hint in done.stderr, done.stderr
