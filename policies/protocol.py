"""The SDK's `Policy` protocol: what a model team implements.

The records (`PolicySpec`, `FieldSpec`, `Capabilities`, `SessionInfo`) live in the contract
package `protos.specs` and are re-exported here, so the testbed's own `Policy` protocol
(`testbed.policy`) accepts SDK policies in-process without importing this package.

Optional methods, used when present:

- ``act_batch(sessions, observations) -> list[np.ndarray]``: one call for several sessions
  (the server falls back to a loop over `act`).
- ``close(session) -> None``: the session ended.
- ``warmup() -> None``: load and warm the model; health reports NOT_SERVING until it returns.

`act` may be called concurrently from several server threads for *different* sessions; calls
for one session are serialised. Observations are read-only arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from protos.specs import PROTOCOL_VERSION, Capabilities, FieldSpec, PolicySpec, SessionInfo

__all__ = [
    "PROTOCOL_VERSION",
    "Capabilities",
    "FieldSpec",
    "Policy",
    "PolicySpec",
    "SessionInfo",
]


@runtime_checkable
class Policy(Protocol):
    """Maps observations to actions, one session (episode stream) at a time."""

    def spec(self) -> PolicySpec:
        """Identity, observation and action spaces, capabilities."""
        ...

    def reset(self, session: SessionInfo) -> None:
        """Start a new episode of ``session`` (new episode index and seed)."""
        ...

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the action (or an action chunk with a leading dimension) for one step.

        A numpy array of exactly the spec's action dtype (a list of Python numbers is
        converted), finite and within the spec's bounds: `serve()` checks it and answers
        INTERNAL, naming the policy and the field, for one that is not.
        """
        ...
