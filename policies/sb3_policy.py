"""`SB3Policy`: serve a Stable-Baselines3 model (PPO, SAC, TD3, A2C, DDPG) as a `Policy`.

Needs ``stable_baselines3`` (imported lazily). The model's observation space must be a Dict
of Box spaces and its action space a Box: the same shapes the testbed's envs publish.

A model written by ``testbed train`` has a metadata file beside it (``model.zip`` ->
``model.json``, format `METADATA_FORMAT`). `SB3Policy.load` reads it when present: the policy
id, version and home site come from it, the handshake offers its observation fields (names,
shapes, bounds) and action, and the file's sha256 is checked against the one recorded at
training time. The model reads only its own fields, so an env that publishes more (the full
``Testbed/ConveyorSort-v0`` observation for a model trained on a subset) is served as well.
Without a metadata file the spec is derived from the model itself.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.protocol import Capabilities, FieldSpec, PolicySpec, SessionInfo

_ALGORITHMS = ("PPO", "SAC", "TD3", "A2C", "DDPG")
METADATA_FORMAT = "testbed.sb3-model/1"
"""The ``format`` value of metadata files this adapter understands."""


@dataclass(frozen=True)
class ModelMetadata:
    """What ``testbed train`` records beside a model, as far as serving needs it.

    Attributes:
        path: The metadata file.
        policy_id: Id the policy reports (its home site after ``@``).
        version: Version the policy reports.
        algorithm: SB3 algorithm name.
        env_id: The task the model was trained on.
        home_site: The site it was trained for (and evaluated at).
        train_sites: Sites training episodes were drawn from.
        observation: The model's observation fields.
        action: The model's action.
        model_sha256: sha256 of the model file at training time.
        record: The whole JSON record.
    """

    path: Path
    policy_id: str
    version: str
    algorithm: str
    env_id: str
    home_site: str
    train_sites: tuple[str, ...]
    observation: Mapping[str, FieldSpec]
    action: FieldSpec
    model_sha256: str
    record: Mapping[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> ModelMetadata:
        """Read and check a metadata file.

        Raises:
            ValueError: Naming the file and the key that is missing or malformed.
        """
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: expected a JSON metadata file: {exc}") from exc
        if not isinstance(record, dict) or record.get("format") != METADATA_FORMAT:
            got = record.get("format") if isinstance(record, dict) else type(record).__name__
            raise ValueError(f"{path}: format: expected {METADATA_FORMAT!r}, got {got!r}")
        text = {key: _text(record, key, path) for key in _TEXT_KEYS}
        observation = record.get("observation")
        if not isinstance(observation, dict) or not observation:
            raise ValueError(f"{path}: observation: expected a non-empty mapping of fields")
        return cls(
            path=path,
            policy_id=text["policy_id"],
            version=text["version"],
            algorithm=text["algorithm"].upper(),
            env_id=text["env_id"],
            home_site=text["home_site"],
            train_sites=tuple(str(s) for s in record.get("train_sites") or [text["home_site"]]),
            observation={
                str(name): _field(spec, f"observation.{name}", path)
                for name, spec in observation.items()
            },
            action=_field(record.get("action"), "action", path),
            model_sha256=_text(record.get("hashes") or {}, "model_sha256", path, "hashes."),
            record=record,
        )


_TEXT_KEYS = ("policy_id", "version", "algorithm", "env_id", "home_site")


def _text(record: Mapping[str, Any], key: str, path: Path, prefix: str = "") -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}: {prefix}{key}: expected a non-empty string, got {value!r}")
    return value


def _field(spec: Any, where: str, path: Path) -> FieldSpec:
    try:
        return FieldSpec(tuple(spec["shape"]), spec["dtype"], spec.get("low"), spec.get("high"))
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(
            f"{path}: {where}: expected {{shape, dtype, low, high}} of a Box, got {spec!r} ({exc})"
        ) from exc


class SB3Policy:
    """Wraps a loaded SB3 model; ``act_batch`` runs one forward pass for all sessions.

    Args:
        model: The SB3 model.
        policy_id: Id reported in the spec.
        version: Version reported in the spec.
        deterministic: Use the policy's mean action.
        metadata: The model's metadata; its id, version and fields override the model's own.

    Raises:
        TypeError: If the model's spaces are not a Dict of Box and a Box.
        ValueError: If the metadata's fields or action do not match the model's spaces.
    """

    def __init__(
        self,
        model: Any,
        *,
        policy_id: str = "sb3",
        version: str = "1",
        deterministic: bool = True,
        metadata: ModelMetadata | None = None,
    ) -> None:
        spaces = getattr(model.observation_space, "spaces", None)
        if not isinstance(spaces, Mapping):
            raise TypeError(
                "SB3Policy: observation_space: expected a Dict space, "
                f"got {model.observation_space}"
            )
        observation = {name: _env_layout(FieldSpec.from_box(box)) for name, box in spaces.items()}
        action = FieldSpec.from_box(model.action_space)
        if metadata is not None:
            _check_against_model(metadata, observation, action)
            policy_id, version = metadata.policy_id, metadata.version
            observation, action = dict(metadata.observation), metadata.action
        self._model = model
        self._deterministic = deterministic
        self.metadata = metadata
        self.home_site = metadata.home_site if metadata is not None else ""
        self._spec = PolicySpec(
            policy_id=policy_id,
            version=version,
            observation=observation,
            action=action,
            capabilities=Capabilities(streaming=True, batching=True, max_batch=256),
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        algorithm: str | None = None,
        deterministic: bool = True,
        metadata_path: str | Path | None = None,
    ) -> SB3Policy:
        """Load a model file saved by ``model.save(path)``, with its metadata if present.

        Args:
            path: The ``.zip`` file.
            algorithm: One of PPO, SAC, TD3, A2C, DDPG; by default from the metadata, else
                read from the file's policy class (SAC and TD3/DDPG policies are distinct;
                actor-critic ones load as PPO, which predicts the same for A2C models).
            deterministic: Use the policy's mean action.
            metadata_path: The metadata file; by default the ``.json`` beside `path`, if any.

        Raises:
            ValueError: If the algorithm is unknown or cannot be inferred, or the metadata is
                malformed, describes other spaces, or records another model file's sha256.
        """
        path = Path(path)
        beside = path.with_suffix(".json")
        if metadata_path is None and beside.is_file():
            metadata_path = beside
        metadata = ModelMetadata.read(metadata_path) if metadata_path is not None else None
        if metadata is not None:
            _check_sha256(path, metadata)
        algorithm = algorithm or (metadata.algorithm if metadata is not None else None)
        if algorithm is None:
            from stable_baselines3.common.save_util import load_from_zip_file

            data, _, _ = load_from_zip_file(path, device="cpu")
            algorithm = _infer_algorithm(
                getattr((data or {}).get("policy_class"), "__module__", "")
            )
        if algorithm.upper() not in _ALGORITHMS:
            raise ValueError(
                f"sb3:{path}: algorithm: expected one of {_ALGORITHMS}, got {algorithm}"
            )
        name = algorithm.upper()
        model = getattr(importlib.import_module("stable_baselines3"), name).load(path, device="cpu")
        policy_id = f"sb3-{name.lower()}:{path.stem}"
        return cls(model, policy_id=policy_id, deterministic=deterministic, metadata=metadata)

    def spec(self) -> PolicySpec:
        """Return the spaces of the wrapped model."""
        return self._spec

    def warmup(self) -> None:
        """Run one forward pass so the first real step is not slow."""
        zeros = {n: np.zeros(f.shape, f.dtype) for n, f in self._spec.observation.items()}
        self._model.predict(zeros, deterministic=True)

    def reset(self, session: SessionInfo) -> None:
        """Feed-forward SB3 policies keep no per-episode state."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predict one action from the model's own fields of `observation`."""
        inputs = {n: observation[n] for n in self._spec.observation}
        action, _ = self._model.predict(inputs, deterministic=self._deterministic)
        return np.asarray(action, dtype=self._spec.action.dtype)

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        """Predict actions for several sessions in one forward pass."""
        stacked = {n: np.stack([o[n] for o in observations]) for n in self._spec.observation}
        actions, _ = self._model.predict(stacked, deterministic=self._deterministic)
        return list(np.asarray(actions, dtype=self._spec.action.dtype))


def _env_layout(field: FieldSpec) -> FieldSpec:
    """An image field ``(C, H, W)`` of the model as the env publishes it, ``(H, W, C)``.

    Testbed envs publish images channel-last; SB3 trains on them channel-first (its
    ``VecTransposeImage``) and its ``predict`` transposes a channel-last image back.
    """
    shape = field.shape
    if field.dtype == "uint8" and len(shape) == 3 and shape[0] in (1, 3, 4):
        if shape[2] not in (1, 3, 4):
            return FieldSpec((shape[1], shape[2], shape[0]), "uint8", 0, 255)
    return field


def _check_against_model(
    metadata: ModelMetadata, observation: Mapping[str, FieldSpec], action: FieldSpec
) -> None:
    where = metadata.path
    if set(metadata.observation) != set(observation):
        raise ValueError(
            f"{where}: observation: expected the model's fields {sorted(observation)}, "
            f"got {sorted(metadata.observation)}"
        )
    for name, field in metadata.observation.items():
        model_field = observation[name]
        if (field.shape, field.dtype) != (model_field.shape, model_field.dtype):
            raise ValueError(
                f"{where}: observation.{name}: expected {model_field.describe()} (the model's), "
                f"got {field.describe()}"
            )
    if (metadata.action.shape, metadata.action.dtype) != (action.shape, action.dtype):
        raise ValueError(
            f"{where}: action: expected {action.describe()} (the model's), "
            f"got {metadata.action.describe()}"
        )


def _check_sha256(path: Path, metadata: ModelMetadata) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != metadata.model_sha256:
        raise ValueError(
            f"{metadata.path}: hashes.model_sha256: expected the sha256 of {path} ({digest}), "
            f"got {metadata.model_sha256}: the metadata belongs to another model file"
        )


def _infer_algorithm(policy_module: str) -> str:
    for name in ("SAC", "TD3"):
        if f".{name.lower()}." in f"{policy_module}.":
            return name
    if policy_module.startswith("stable_baselines3.common.policies"):
        return "PPO"  # actor-critic policies (PPO, A2C)
    raise ValueError(f"cannot tell the SB3 algorithm of policy module {policy_module!r}")
