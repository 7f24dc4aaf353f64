"""What separates the true cell state from what a policy sees, and its actions from the robot.

`PartSensor` corrupts part tracking (noise, latency, dropout) per the site's sensor profile;
`ActionLink` delays actions by the site's policy-link latency. Both draw randomness only from
the env's `np_random`, so an episode is reproducible from its seed. Both offer `state()` /
`load_state()` (numpy arrays) for env snapshots: the readings and actions in flight are what a
restored episode needs to see and do what the original did.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from envs.factory.schema import PolicyLinkSpec, SensorSpec


class PartSensor:
    """Tracks the current part the way the site's sensors do."""

    def __init__(self, spec: SensorSpec) -> None:
        self.spec = spec
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=spec.latency_steps + 1)
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget readings of the previous episode."""
        self._history.clear()
        self._last = None

    def read(
        self, position: np.ndarray, velocity: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sensor reading of the part's position and velocity."""
        spec = self.spec
        noisy_pos = (
            position + rng.normal(0.0, spec.position_noise_m, 3)
            if spec.position_noise_m
            else position
        )
        noisy_vel = (
            velocity + rng.normal(0.0, spec.velocity_noise_mps, 3)
            if spec.velocity_noise_mps
            else velocity
        )
        self._history.append((noisy_pos, noisy_vel))
        reading = self._history[0]  # the oldest kept reading: latency_steps old
        if self._last is not None and spec.dropout_prob and rng.random() < spec.dropout_prob:
            reading = self._last
        self._last = reading
        return reading

    def state(self) -> dict[str, np.ndarray]:
        """The readings kept for latency and dropout.

        ``sensor_pos`` and ``sensor_vel`` (m, 3), oldest first; once there is one,
        ``sensor_last`` (2, 3): the last reading's position and velocity.
        """
        state = {
            "sensor_pos": _rows([pos for pos, _ in self._history], 3, np.float64),
            "sensor_vel": _rows([vel for _, vel in self._history], 3, np.float64),
        }
        if self._last is not None:
            state["sensor_last"] = np.stack(self._last)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Put back what `state` returned (copies; no ``sensor_last`` means no reading yet)."""
        self._history.clear()
        self._history.extend(
            (pos.copy(), vel.copy())
            for pos, vel in zip(state["sensor_pos"], state["sensor_vel"], strict=True)
        )
        last = state.get("sensor_last")
        self._last = (last[0].copy(), last[1].copy()) if last is not None else None


class ActionLink:
    """Delays actions by a fixed number of control steps; the robot holds until they arrive."""

    def __init__(self, spec: PolicyLinkSpec, hold_action: np.ndarray) -> None:
        self.latency = spec.latency_steps
        self.hold_action = hold_action
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        """Drop actions in flight."""
        self._queue.clear()

    def transmit(self, action: np.ndarray) -> np.ndarray:
        """Send an action; returns the action arriving at the robot this step."""
        self._queue.append(action)
        if len(self._queue) > self.latency:
            return self._queue.popleft()
        return self.hold_action

    def state(self) -> dict[str, np.ndarray]:
        """The actions in flight, oldest first: ``link_queue`` (k, 4)."""
        width = int(self.hold_action.shape[0])
        return {"link_queue": _rows(list(self._queue), width, np.float32)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Put back the actions in flight `state` returned (copies)."""
        self._queue.clear()
        self._queue.extend(action.copy() for action in state["link_queue"])


def _rows(values: list[np.ndarray], width: int, dtype: type) -> np.ndarray:
    """Stack equal-length vectors (keeping their dtype); an empty list gives (0, width)."""
    return np.stack(values) if values else np.zeros((0, width), dtype)
