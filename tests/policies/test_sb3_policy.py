from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import stable_baselines3 as sb3

from policies.protocol import Policy, SessionInfo
from policies.sb3_policy import METADATA_FORMAT, SB3Policy
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


# --- metadata written beside the model (format of `testbed train`) ---------------------------

META_FIELDS = ("ee_pos", "gripper", "part_pos", "part_size")


class _SubsetEnv(_SpacesOnlyEnv):
    """A model trained on four of the ConveyorSort fields."""

    def __init__(self) -> None:
        super().__init__()
        full = self.observation_space
        self.observation_space = gymnasium.spaces.Dict({n: full[n] for n in META_FIELDS})


def _box(box: Any) -> dict[str, Any]:
    return {
        "shape": list(box.shape),
        "dtype": np.dtype(box.dtype).name,
        "low": np.asarray(box.low, dtype=np.float64).tolist(),
        "high": np.asarray(box.high, dtype=np.float64).tolist(),
    }


def write_metadata(model_path: Path, **changes: Any) -> Path:
    env = _SubsetEnv()
    record: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "policy_id": "sb3-sac-touchpart-v0@jp-nagoya",
        "version": "0123abcd",
        "algorithm": "SAC",
        "env_id": "Testbed/TouchPart-v0",
        "home_site": "jp-nagoya",
        "train_sites": ["jp-nagoya"],
        "observation": {n: _box(b) for n, b in env.observation_space.spaces.items()},
        "action": _box(env.action_space),
        "hashes": {"model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()},
    }
    record.update(changes)
    path = model_path.with_suffix(".json")
    path.write_text(json.dumps(record))
    return path


@functools.cache
def saved_model_with_metadata() -> Path:
    # Saved as SAC under an uninformative name: the algorithm must come from the metadata.
    path = Path(tempfile.mkdtemp(prefix="sb3-meta-")) / "model.zip"
    sb3.SAC("MultiInputPolicy", _SubsetEnv(), learning_starts=0, buffer_size=64, seed=0).save(path)
    write_metadata(path)
    return path


class TestSB3MetadataPolicyServer(PolicyServerCompliance):
    def make_policy(self) -> Policy:
        return SB3Policy.load(saved_model_with_metadata())


def test_metadata_drives_the_spec_and_the_field_mapping() -> None:
    path = saved_model_with_metadata()
    policy = SB3Policy.load(path)
    spec = policy.spec()
    assert (spec.policy_id, spec.version) == ("sb3-sac-touchpart-v0@jp-nagoya", "0123abcd")
    assert policy.home_site == "jp-nagoya" and policy.metadata is not None
    assert sorted(spec.observation) == sorted(META_FIELDS)
    assert spec.observation["part_size"].shape == (3,) and spec.observation["gripper"].high == 5.0
    # A full ConveyorSort observation: the model reads its four fields, ignores the rest.
    model = sb3.SAC.load(path, device="cpu")
    rng = np.random.default_rng(1)
    observations = [sample_observation(rng) for _ in range(3)]
    for observation in observations:
        expected, _ = model.predict({n: observation[n] for n in META_FIELDS}, deterministic=True)
        np.testing.assert_array_equal(policy.act(SessionInfo("s"), observation), expected)
    batch = policy.act_batch([SessionInfo("s")] * 3, observations)
    np.testing.assert_allclose(
        np.stack(batch), [policy.act(SessionInfo("s"), o) for o in observations], atol=1e-6
    )


def test_metadata_of_another_model_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(saved_model_with_metadata().read_bytes())
    write_metadata(path, hashes={"model_sha256": "0" * 64})
    with pytest.raises(ValueError, match=r"model.json: hashes.model_sha256: expected the sha256"):
        SB3Policy.load(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other/2"}, r"format: expected 'testbed.sb3-model/1', got 'other/2'"),
        ({"home_site": ""}, "home_site: expected a non-empty string"),
        ({"observation": {}}, "observation: expected a non-empty mapping"),
        ({"action": {"shape": [4]}}, r"action: expected \{shape, dtype, low, high\}"),
    ],
    ids=["format", "home_site", "observation", "action"],
)
def test_malformed_metadata_names_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(saved_model_with_metadata().read_bytes())
    write_metadata(path, **changes)
    with pytest.raises(ValueError, match=message):
        SB3Policy.load(path)


def test_metadata_that_disagrees_with_the_model_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(saved_model_with_metadata().read_bytes())
    env = _SubsetEnv()
    fields = {n: _box(b) for n, b in env.observation_space.spaces.items()}
    write_metadata(
        path,
        observation={
            **fields,
            "part_size": {**fields["part_size"], "shape": [2], "low": -5.0, "high": 5.0},
        },
    )
    with pytest.raises(ValueError, match=r"observation.part_size: expected float32\[3\]"):
        SB3Policy.load(path)
    write_metadata(path, observation={**fields, "time": fields["gripper"]})
    with pytest.raises(ValueError, match="observation: expected the model's fields"):
        SB3Policy.load(path)
