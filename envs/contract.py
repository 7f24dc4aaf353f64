"""`CellContract`: what the testbed may rely on from an env, and nothing else.

The testbed checks an env against it once, when it makes the env
(``testbed.episodes.env_contract.contract_of``), and from then on uses these members only; it never
probes an env for optional attributes. `envs.core.CellEnv` offers it, so every task does.
Where the env id and keyword arguments come from: Gymnasium's ``env.spec``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["CONTRACT_MEMBERS", "CellContract"]


@runtime_checkable
class CellContract(Protocol):
    """The members of an unwrapped env that the testbed uses.

    Attributes:
        control_dt: Simulated seconds per ``step`` (the control period).
        site_id: The site the env was built for (``kr-changwon``).
        bundle_hash: The hash of the site's factory bundle.
    """

    control_dt: float

    @property
    def site_id(self) -> str:
        """The site the env was built for."""
        ...

    @property
    def bundle_hash(self) -> str:
        """The hash of the site's factory bundle."""
        ...

    def episode_summary(self) -> dict[str, Any]:
        """The episode's metrics so far, with its ``outcome`` (for an episode stopped early)."""
        ...

    def save_snapshot(self) -> bytes:
        """The env's full state as portable bytes."""
        ...

    def load_snapshot(self, blob: bytes) -> dict[str, np.ndarray]:
        """Restore a `save_snapshot` state (after a reset with the episode's seed)."""
        ...


CONTRACT_MEMBERS = (
    "control_dt",
    "site_id",
    "bundle_hash",
    "episode_summary",
    "save_snapshot",
    "load_snapshot",
)
"""The members of `CellContract`, for messages naming the missing ones."""
