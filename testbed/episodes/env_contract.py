"""Check an env once against the contract the testbed relies on (`envs.contract.CellContract`).

Rollouts, recorders, replays and videos take the `EnvContract` that `contract_of` returns when
they get an env, and use its members only: no attribute probing, no assumed control period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from envs.contract import CONTRACT_MEMBERS, CellContract
from testbed.errors import TestbedError

__all__ = ["EnvContract", "EnvContractError", "contract_of"]


class EnvContractError(TestbedError):
    """An env lacks a member of the testbed's env contract (`envs.contract.CellContract`)."""


@dataclass(frozen=True)
class EnvContract:
    """What the testbed uses of one env, checked once.

    Attributes:
        env_id: The Gymnasium id the env was made with (``""`` if made without one).
        env_kwargs: The keyword arguments it was made with.
        site_id: The site it was built for.
        bundle_hash: The hash of the site's factory bundle.
        control_dt: Simulated seconds per step (> 0).
        episode_summary: The episode's metrics so far, with its ``outcome``.
        save_snapshot: The env's full state as bytes.
        load_snapshot: Restores such bytes; returns the observation at that point.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(repr=False)
    site_id: str
    bundle_hash: str
    control_dt: float
    episode_summary: Callable[[], dict[str, Any]] = field(repr=False)
    save_snapshot: Callable[[], bytes] = field(repr=False)
    load_snapshot: Callable[[bytes], dict[str, np.ndarray]] = field(repr=False)


def contract_of(env: gym.Env) -> EnvContract:
    """The contract of ``env`` (wrapped or not), checked.

    Raises:
        EnvContractError: Naming the env and every contract member it lacks, or a control
            period that is not a positive number.
    """
    inner = env.unwrapped
    spec = inner.spec
    name = spec.id if spec is not None else type(inner).__name__
    if not isinstance(inner, CellContract):
        missing = [member for member in CONTRACT_MEMBERS if not hasattr(inner, member)]
        raise EnvContractError(
            f"{name}: not a testbed env: it lacks {', '.join(missing) or 'a callable member'} "
            "of envs.contract.CellContract (envs.core.CellEnv offers them all)"
        )
    control_dt = float(inner.control_dt)
    if not control_dt > 0.0:
        raise EnvContractError(f"{name}: control_dt: expected > 0, got {inner.control_dt!r}")
    return EnvContract(
        env_id=spec.id if spec is not None else "",
        env_kwargs=dict(spec.kwargs) if spec is not None else {},
        site_id=inner.site_id,
        bundle_hash=inner.bundle_hash,
        control_dt=control_dt,
        episode_summary=inner.episode_summary,
        save_snapshot=inner.save_snapshot,
        load_snapshot=inner.load_snapshot,
    )
