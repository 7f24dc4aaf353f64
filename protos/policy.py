"""The one `Policy` protocol: what a model team implements and what the testbed calls.

Both sides import it from here (``policies -> protos <- testbed``): the SDK's server serves any
object that satisfies it, and the testbed runs the same object in-process or reaches it over
gRPC through `testbed.link.client.RemotePolicy`, which satisfies it too.

Optional methods, used when present:

- ``act_batch(sessions, observations) -> list[np.ndarray]``: one call for several sessions
  (the server falls back to a loop over `act`).
- ``close(session) -> None``: the session ended.
- ``warmup() -> None``: load and warm the model; health reports NOT_SERVING until it returns.
- ``compute_of(session) -> protos.compute.ComputeUsage``: what the last ``act`` (or
  ``act_batch`` item) of ``session`` cost where it ran; a policy that offers it is trusted for
  its own compute (``RemotePolicy`` reports the server's figure), any other is measured around
  its call by the testbed's `protos.compute.ComputeMeter`.

`act` may be called concurrently from several server threads for *different* sessions; calls
for one session are serialised. Observations are read-only arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from protos.specs import PolicySpec, SessionInfo

__all__ = ["Policy"]


@runtime_checkable
class Policy(Protocol):
    """Maps observations to actions, one session (stream of episodes) at a time.

    ``session`` is a `SessionInfo` (session_id, site, campaign, episode, seed); any object with
    those attributes works at run time.
    """

    def spec(self) -> PolicySpec:
        """Identity, observation and action spaces, capabilities."""
        ...

    def reset(self, session: SessionInfo) -> None:
        """Begin an episode (new episode index and seed) of ``session``."""
        ...

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return one action, or an action chunk with a leading dimension.

        A numpy array of exactly the spec's action dtype (a list of Python numbers is
        converted), finite and within the spec's bounds: `serve()` checks it and answers
        INTERNAL, naming the policy and the field, for one that is not; the testbed checks it
        again before it reaches the simulator.
        """
        ...
