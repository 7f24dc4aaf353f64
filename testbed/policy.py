"""The testbed's view of a policy: a structural `Policy` protocol and action validation.

Anything with ``spec()``, ``reset(session)`` and ``act(session, observation)`` is a policy here:
an in-process object (for example one written against the ``policies`` SDK, which shares these
records through ``protos.specs``) or `testbed.policy_client.RemotePolicy`. The testbed never
imports ``policies``. Every action goes through `validate_action` before it reaches the
simulator.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from protos.specs import BoxLike, Capabilities, FieldSpec, PolicySpec, SessionInfo
from testbed.errors import InvalidActionError

__all__ = [
    "ActionValidator",
    "Capabilities",
    "FieldSpec",
    "Policy",
    "PolicySpec",
    "SessionInfo",
    "spaces_to_specs",
    "validate_action",
]


@runtime_checkable
class Policy(Protocol):
    """Maps observations to actions, one session (stream of episodes) at a time.

    ``session`` is a `SessionInfo` (session_id, site, campaign, episode, seed); any object with
    those attributes works at run time.
    """

    def spec(self) -> PolicySpec:
        """Identity, spaces and capabilities."""
        ...

    def reset(self, session: SessionInfo) -> None:
        """Begin an episode (new episode index and seed) of ``session``."""
        ...

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return one action, or an action chunk with a leading dimension."""
        ...


def spaces_to_specs(
    observation_space: Any, action_space: BoxLike
) -> tuple[dict[str, FieldSpec], FieldSpec]:
    """Convert a Gymnasium ``Dict`` of ``Box`` observation space and a ``Box`` action space.

    Raises:
        TypeError: If the observation space is not a Dict of Box-like spaces.
    """
    spaces = getattr(observation_space, "spaces", None)
    if not isinstance(spaces, Mapping):
        raise TypeError(
            f"observation_space: expected a gymnasium Dict space, got {type(observation_space)}"
        )
    observation = {}
    for name, box in spaces.items():
        if not all(hasattr(box, a) for a in ("shape", "dtype", "low", "high")):
            raise TypeError(f"observation_space[{name!r}]: expected a Box, got {type(box)}")
        observation[name] = FieldSpec.from_box(box)
    return observation, FieldSpec.from_box(action_space)


def validate_action(
    action: Any, space: BoxLike | FieldSpec, *, allow_chunk: bool = True
) -> np.ndarray:
    """Check an action against the action space and return it in the space's dtype.

    A numpy array (or scalar) must have exactly the space's dtype: a float64, integer or bool
    array for a float32 space is refused (reason ``dtype``), never cast. A list of Python
    numbers has no dtype of its own and is converted.

    Args:
        action: What the policy returned.
        space: The env's action space (a Box) or a `FieldSpec`.
        allow_chunk: Accept a leading chunk dimension, shape ``(k, *space.shape)`` with k >= 1.

    Returns:
        The action as a contiguous array of the space's dtype (chunk dimension kept).

    Raises:
        InvalidActionError: Naming what was wrong: shape, dtype, non-finite or out of bounds.
    """
    target = np.dtype(space.dtype)
    if isinstance(action, np.ndarray | np.generic):
        # A typed array says what it is: executing a float64, int or bool action as the
        # space's float32 would hide a policy bug (an int 1 is full-scale motion).
        array = np.asarray(action)
        if array.dtype != target:
            raise InvalidActionError("dtype", f"expected {target}, got {array.dtype}")
    else:
        array = _untyped_action(action, target)
    shape = tuple(space.shape)
    if array.shape != shape:
        chunked = allow_chunk and array.ndim == len(shape) + 1 and array.shape[1:] == shape
        if not chunked or array.shape[0] < 1:
            chunk = f" or (k, *{shape})" if allow_chunk else ""
            raise InvalidActionError("shape", f"expected {shape}{chunk}, got {array.shape}")
    if not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise InvalidActionError("non-finite", f"element {bad} is {array[bad]}")
    _check_bounds(array, space.low, space.high)
    return array


def _untyped_action(action: Any, target: np.dtype) -> np.ndarray:
    """Convert an action without a dtype of its own (nested lists of Python numbers)."""
    try:
        array = np.asarray(action)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError("dtype", f"not convertible to an array: {exc}") from exc
    kinds = "iu" if target.kind in "iu" else "iuf"  # never bools, strings or objects
    if array.dtype.kind not in kinds or not np.can_cast(array.dtype, target, "same_kind"):
        raise InvalidActionError(
            "dtype", f"expected numbers convertible to {target}, got {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=target)


_FAST_MAX_ELEMENTS = 64  # up to here a loop over Python floats beats numpy's per-call overhead


class ActionValidator:
    """`validate_action` for one action space, with the per-space work done once.

    A float action of exactly the space's dtype and shape with at most 64 elements is checked
    in one pass over its values against bounds clipped to the finite float range, so the one
    comparison per element rejects NaN, +-inf and out-of-bounds values alike. Anything else,
    and any action that fails that pass, goes through `validate_action`, which names the
    problem. The result is the same as ``validate_action(action, space, allow_chunk=...)``.

    Args:
        space: The env's action space (a Box) or a `FieldSpec`.
        allow_chunk: Accept a leading chunk dimension, shape ``(k, *space.shape)``.
    """

    def __init__(self, space: BoxLike | FieldSpec, *, allow_chunk: bool = True) -> None:
        self.space = space
        self.allow_chunk = allow_chunk
        self._dtype = np.dtype(space.dtype)
        self._shape = tuple(int(d) for d in space.shape)
        size = math.prod(self._shape)
        self._fast = self._dtype.kind == "f" and 0 < size <= _FAST_MAX_ELEMENTS
        self._flat = len(self._shape) == 1
        self._bounds: list[tuple[float, float]] = []
        if self._fast:
            top = sys.float_info.max  # every finite float64 (so every float32) is within
            low = _bound_list(space.low, self._shape, -math.inf)
            high = _bound_list(space.high, self._shape, math.inf)
            self._bounds = [(max(lo, -top), min(hi, top)) for lo, hi in zip(low, high, strict=True)]

    def __call__(self, action: Any) -> np.ndarray:
        """Check ``action``; see `validate_action` for what is returned and raised."""
        if (
            self._fast
            and type(action) is np.ndarray
            and action.shape == self._shape
            and action.dtype == self._dtype
        ):
            values = action.tolist() if self._flat else action.ravel().tolist()
            for value, (low, high) in zip(values, self._bounds, strict=True):
                if not low <= value <= high:  # False for NaN too
                    break
            else:
                return action
        return validate_action(action, self.space, allow_chunk=self.allow_chunk)


def _bound_list(bound: Any, shape: tuple[int, ...], default: float) -> list[float]:
    if bound is None:
        return [default] * math.prod(shape)
    return [float(v) for v in np.broadcast_to(np.asarray(bound, np.float64), shape).ravel()]


def _check_bounds(array: np.ndarray, low: Any, high: Any) -> None:
    outside = np.zeros(array.shape, dtype=bool)
    if low is not None:
        outside |= array < low
    if high is not None:
        outside |= array > high
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        lo = np.broadcast_to(low if low is not None else -np.inf, array.shape)[index]
        hi = np.broadcast_to(high if high is not None else np.inf, array.shape)[index]
        raise InvalidActionError(
            "out-of-bounds", f"element {index} = {array[index]:.6g} outside [{lo:.6g}, {hi:.6g}]"
        )
