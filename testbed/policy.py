"""The testbed's view of a policy: a structural `Policy` protocol and action validation.

Anything with ``spec()``, ``reset(session)`` and ``act(session, observation)`` is a policy here:
an in-process object (for example one written against the ``policies`` SDK, which shares these
records through ``protos.specs``) or `testbed.policy_client.RemotePolicy`. The testbed never
imports ``policies``. Every action goes through `validate_action` before it reaches the
simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from protos.specs import BoxLike, Capabilities, FieldSpec, PolicySpec, SessionInfo
from testbed.errors import InvalidActionError

__all__ = [
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

    Args:
        action: What the policy returned.
        space: The env's action space (a Box) or a `FieldSpec`.
        allow_chunk: Accept a leading chunk dimension, shape ``(k, *space.shape)`` with k >= 1.

    Returns:
        The action as a contiguous array of the space's dtype (chunk dimension kept).

    Raises:
        InvalidActionError: Naming what was wrong: shape, dtype, non-finite or out of bounds.
    """
    try:
        array = action if type(action) is np.ndarray else np.asarray(action)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError("dtype", f"not convertible to an array: {exc}") from exc
    target = space.dtype
    if array.dtype != target:
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, target, "same_kind"):
            raise InvalidActionError(
                "dtype", f"expected a dtype castable to {np.dtype(target)}, got {array.dtype}"
            )
        array = np.ascontiguousarray(array, dtype=target)
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
