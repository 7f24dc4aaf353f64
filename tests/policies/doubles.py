"""Test doubles: ConveyorSort-shaped spaces and small policies with known (mis)behaviour."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import gymnasium
import numpy as np

from policies.protocol import Capabilities, FieldSpec, PolicySpec, SessionInfo
from testbed.link.policy import spaces_to_specs

OBS_SIZES = {
    "ee_pos": 3,
    "ee_vel": 3,
    "gripper": 1,
    "holding": 1,
    "part_pos": 3,
    "part_vel": 3,
    "part_size": 3,
    "part_type": 4,
    "bin_pos": 3,
    "time": 1,
}


def observation_space() -> gymnasium.spaces.Dict:
    """The ConveyorSort-v0 observation space (float32 Boxes)."""
    return gymnasium.spaces.Dict(
        {n: gymnasium.spaces.Box(-5.0, 5.0, (k,), np.float32) for n, k in OBS_SIZES.items()}
    )


def action_space() -> gymnasium.spaces.Box:
    """The ConveyorSort-v0 action space."""
    return gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)


def specs() -> tuple[dict[str, FieldSpec], FieldSpec]:
    return spaces_to_specs(observation_space(), action_space())


def sample_observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {n: rng.uniform(-1, 1, k).astype(np.float32) for n, k in OBS_SIZES.items()}


class LinearPolicy:
    """Deterministic: action = clip(ee_pos + step offset); lets tests check which obs was used."""

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        observation, action = specs()
        self._spec = PolicySpec("linear", "1", observation, action, capabilities or Capabilities())
        self.calls = 0
        self.batch_calls = 0
        self.resets: list[SessionInfo] = []
        self.closed: list[str] = []

    def spec(self) -> PolicySpec:
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        self.resets.append(session)

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        head = np.append(observation["ee_pos"], observation["gripper"]).astype(np.float32)
        return np.clip(head * 0.5, -1, 1).astype(np.float32)

    def close(self, session: SessionInfo) -> None:
        self.closed.append(session.session_id)


class BatchingPolicy(LinearPolicy):
    """LinearPolicy with a native act_batch (counts its calls)."""

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        self.batch_calls += 1
        return [LinearPolicy.act(self, s, o) for s, o in zip(sessions, observations, strict=True)]


class BadActionPolicy(LinearPolicy):
    """Returns a configurable action outside its own spec (float32[4] in [-1, 1]).

    Kinds: ``nan``, ``inf``, ``shape``, ``chunk`` (a chunk it did not announce), ``bounds``,
    ``low``, ``dtype`` (strings) and ``float64``; ``list`` (Python floats, fine) is not bad.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        return {  # type: ignore[return-value]
            "nan": np.array([0.0, np.nan, 0.0, 0.0], np.float32),
            "inf": np.array([0.0, 0.0, 0.0, -np.inf], np.float32),
            "shape": np.zeros(3, np.float32),
            "chunk": np.zeros((2, 4), np.float32),
            "bounds": np.array([0.0, 2.5, 0.0, 0.0], np.float32),
            "low": np.array([-1.5, 0.0, 0.0, 0.0], np.float32),
            "dtype": np.array(["a", "b", "c", "d"]),
            "float64": np.zeros(4, np.float64),
            "list": [0.0, 0.5, -0.5, 1.0],
        }[self.kind]


class SlowPolicy(LinearPolicy):
    """Sleeps before answering (cut short by `release`, so tests never wait out the sleep).

    With ``only_site`` set, only sessions of that site are slow.
    """

    def __init__(self, delay_s: float, only_site: str | None = None) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.only_site = only_site
        self.release = threading.Event()

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.only_site is None or session.site == self.only_site:
            self.release.wait(self.delay_s)
        return super().act(session, observation)


class RaisingPolicy(LinearPolicy):
    """Raises on every act."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        raise RuntimeError("model exploded")


class GatedWarmupPolicy(LinearPolicy):
    """warmup() blocks until `gate` is set (bounded), so tests can see NOT_SERVING first."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def warmup(self) -> None:
        self.gate.wait(10.0)


class CameraPolicy(LinearPolicy):
    """Also needs a wrist camera image the ConveyorSort env does not publish."""

    def __init__(self) -> None:
        super().__init__()
        observation = dict(self._spec.observation, wrist_camera=FieldSpec((8, 8, 3), "uint8"))
        self._spec = PolicySpec("camera", "1", observation, self._spec.action)


def make_linear_policy() -> LinearPolicy:
    """Factory used by ``testbed serve tests.policies.doubles:make_linear_policy``."""
    return LinearPolicy()


def wait_for(predicate: object, timeout_s: float = 5.0) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s`` passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False
