"""The observation every Testbed task shares: its named fields, their bounds, the base frame.

Positions and velocities are in the robot base frame (translation and yaw), so one policy runs
on every robot and layout, and moves between tasks (`Testbed/ConveyorSort-v0`,
`Testbed/TouchPart-v0`). The field table is in the docstring of `envs.conveyor_sort`.

An env builds its observation as one list of floats in `FIELDS` order and calls `pack`, which
makes one float32 vector, clips it once and hands the fields out as views of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

MAX_BINS = 4
FIELDS: dict[str, tuple[int, float, float]] = {
    "ee_pos": (3, -3.0, 3.0),
    "ee_vel": (3, -5.0, 5.0),
    "gripper": (1, 0.0, 1.0),
    "holding": (1, 0.0, 1.0),
    "part_pos": (3, -3.0, 3.0),
    "part_vel": (3, -5.0, 5.0),
    "part_size": (3, 0.0, 2.0),
    "part_type": (MAX_BINS, 0.0, 1.0),
    "bin_pos": (3, -3.0, 3.0),
    "time": (1, 0.0, 1.0),
}
"""Field name -> (size, low, high)."""


def _layout() -> dict[str, slice]:
    slices, start = {}, 0
    for name, (size, _, _) in FIELDS.items():
        slices[name] = slice(start, start + size)
        start += size
    return slices


SLICES = _layout()
"""Where each field sits in the observation vector."""
SIZE = SLICES["time"].stop
_LOW = np.concatenate([np.full(size, low, np.float32) for size, low, _ in FIELDS.values()])
_HIGH = np.concatenate([np.full(size, high, np.float32) for size, _, high in FIELDS.values()])
NO_PART = (0.0,) * (SLICES["bin_pos"].stop - SLICES["part_pos"].start)
"""The part fields (part_pos .. bin_pos) when there is no current part."""


def observation_space() -> spaces.Dict:
    """The observation space of the part tasks (ConveyorSort, TouchPart), the same at every site."""
    return spaces.Dict(
        {
            name: spaces.Box(low, high, shape=(size,), dtype=np.float32)
            for name, (size, low, high) in FIELDS.items()
        }
    )


_SHARED = ("ee_pos", "ee_vel", "gripper", "holding", "time")
PART_FIELDS: dict[str, tuple[int, float, float]] = {
    name: spec for name, spec in FIELDS.items() if name not in _SHARED
}
"""The task fields of the part tasks (``part_pos`` .. ``bin_pos``): `FIELDS` less the shared."""


class Layout:
    """An observation's fields: the shared ones around a task's own (`Task.observation_fields`).

    ``ee_pos``, ``ee_vel``, ``gripper``, ``holding``, then the task's fields, then ``time``. The
    part tasks' layout is `FIELDS`; `pack` and `fields` behave as the module functions do.

    Args:
        task_fields: Field name -> (size, low, high) of the task's fields, in order.

    Raises:
        ValueError: If a task field reuses a shared field's name.
    """

    def __init__(self, task_fields: dict[str, tuple[int, float, float]]) -> None:
        shared = {n: FIELDS[n] for n in _SHARED[:-1]}
        clash = sorted(set(task_fields) & set(_SHARED))
        if clash:
            raise ValueError(f"observation: task fields {clash} clash with the shared fields")
        self.specs = {**shared, **task_fields, "time": FIELDS["time"]}
        self.slices, start = {}, 0
        for name, (size, _, _) in self.specs.items():
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start
        self._low = np.concatenate([np.full(n, lo, np.float32) for n, lo, _ in self.specs.values()])
        self._high = np.concatenate([np.full(n, h, np.float32) for n, _, h in self.specs.values()])

    def space(self) -> spaces.Dict:
        """The observation space (a `Dict` of float32 `Box`es), the same for every site."""
        return spaces.Dict(
            {
                name: spaces.Box(low, high, shape=(size,), dtype=np.float32)
                for name, (size, low, high) in self.specs.items()
            }
        )

    def pack(self, values: Sequence[float]) -> np.ndarray:
        """The observation vector of ``values`` (field order), float32 clipped to the bounds."""
        vector = np.array(values, dtype=np.float32)
        return np.minimum(np.maximum(vector, self._low, out=vector), self._high, out=vector)

    def fields(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """The named fields of an observation vector (views of it)."""
        return {name: vector[part] for name, part in self.slices.items()}


def pack(values: Sequence[float]) -> np.ndarray:
    """The observation vector of ``values`` (`FIELDS` order), as float32 clipped to the bounds."""
    vector = np.array(values, dtype=np.float32)
    return np.minimum(np.maximum(vector, _LOW, out=vector), _HIGH, out=vector)


def fields(vector: np.ndarray) -> dict[str, np.ndarray]:
    """The named fields of an observation vector (views of it)."""
    return {name: vector[part] for name, part in SLICES.items()}


def part_type(bin_index: int) -> list[float]:
    """One-hot of the bin a part belongs in."""
    one_hot = [0.0] * MAX_BINS
    one_hot[bin_index] = 1.0
    return one_hot


class BaseFrame:
    """World -> robot base frame (translation and yaw).

    On plain floats: for 3-vectors that is cheaper than numpy's per-call overhead.
    """

    def __init__(self, origin: Sequence[float] | np.ndarray, yaw: float) -> None:
        self.origin = (float(origin[0]), float(origin[1]), float(origin[2]))
        self.cos, self.sin = math.cos(-yaw), math.sin(-yaw)

    def point(self, p: Any) -> tuple[float, float, float]:
        """A world point in the base frame."""
        ox, oy, oz = self.origin
        return self.vector((p[0] - ox, p[1] - oy, p[2] - oz))

    def vector(self, v: Any) -> tuple[float, float, float]:
        """A world vector (velocity, offset) in the base frame."""
        x, y, z = float(v[0]), float(v[1]), float(v[2])
        return (self.cos * x - self.sin * y, self.sin * x + self.cos * y, z)
