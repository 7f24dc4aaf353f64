"""The testbed's view of a policy: the shared `Policy` protocol and action validation.

Anything with ``spec()``, ``reset(session)`` and ``act(session, observation)`` is a policy here:
an in-process object (for example one written against the ``policies`` SDK, which shares these
records through ``protos.specs``) or `testbed.link.client.RemotePolicy`. The testbed never
imports ``policies``. Every action goes through `validate_action` before it reaches the
simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from protos.actions import ActionCheck, BadAction
from protos.policy import Policy
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
    numbers has no dtype of its own and is converted. The check is `protos.actions.ActionCheck`,
    the one a policy server applies to its own policy's output.

    Args:
        action: What the policy returned.
        space: The env's action space (a Box) or a `FieldSpec`.
        allow_chunk: Accept a leading chunk dimension, shape ``(k, *space.shape)`` with k >= 1.

    Returns:
        The action as an array of the space's dtype (chunk dimension kept).

    Raises:
        InvalidActionError: Naming what was wrong: shape, dtype, non-finite or out of bounds.
    """
    return ActionValidator(space, allow_chunk=allow_chunk)(action)


class ActionValidator:
    """`validate_action` for one action space, with the per-space work done once.

    Args:
        space: The env's action space (a Box) or a `FieldSpec`.
        allow_chunk: Accept a leading chunk dimension, shape ``(k, *space.shape)``.
    """

    def __init__(self, space: BoxLike | FieldSpec, *, allow_chunk: bool = True) -> None:
        self.space = space
        self.allow_chunk = allow_chunk
        spec = space if isinstance(space, FieldSpec) else FieldSpec.from_box(space)
        self._check = ActionCheck(spec, chunking=allow_chunk)

    def __call__(self, action: Any) -> np.ndarray:
        """Check ``action``; see `validate_action` for what is returned and raised."""
        try:
            return self._check(action)
        except BadAction as exc:
            raise InvalidActionError(exc.reason, str(exc)) from None
