"""Training envs: one site or a per-episode mix of sites, success reporting, vectorisation.

`SiteMixEnv` is the domain randomisation of ``testbed train``: it holds the same task at several
sites and draws the site of every episode from its own seeded generator, so a run is still
reproducible from its seed. `make_env` is a module-level function (picklable with
`functools.partial`), so `SubprocVecEnv` workers started with forkserver or spawn can build
their env themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FilterObservation
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

_SEED_RANGE = 2**31 - 1


class SuccessInfo(gym.Wrapper):
    """Copies ``episode_metrics["success_at_end"]`` to ``info["is_success"]`` at episode end.

    SB3's `EvalCallback` and `Monitor` read ``is_success``; the testbed's envs report their
    success rule in ``episode_metrics``.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env and add ``is_success`` when the episode ends."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            metrics = info.get("episode_metrics", {})
            info["is_success"] = bool(metrics.get("success_at_end", False))
        return observation, float(reward), terminated, truncated, info


class SiteMixEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """The same task at several sites; each episode runs at a site drawn uniformly at random.

    Args:
        env_id: Registered Gymnasium id.
        sites: Site ids (or bundle folders) to draw from.
        env_kwargs: Extra keyword arguments of every site's env.

    Raises:
        ValueError: If `sites` is empty or two sites publish different spaces.
    """

    def __init__(
        self, env_id: str, sites: Sequence[str], env_kwargs: dict[str, Any] | None = None
    ) -> None:
        if not sites:
            raise ValueError(f"SiteMixEnv({env_id}): sites: expected at least one site, got none")
        self.sites = list(sites)
        self._envs = [gym.make(env_id, site=site, **(env_kwargs or {})) for site in self.sites]
        first = self._envs[0]
        for site, env in zip(self.sites[1:], self._envs[1:], strict=True):
            if env.observation_space != first.observation_space:
                raise ValueError(
                    f"SiteMixEnv({env_id}): site {site!r}: observation space differs from "
                    f"{self.sites[0]!r}'s: {env.observation_space} vs {first.observation_space}"
                )
            if env.action_space != first.action_space:
                raise ValueError(
                    f"SiteMixEnv({env_id}): site {site!r}: action space differs from "
                    f"{self.sites[0]!r}'s: {env.action_space} vs {first.action_space}"
                )
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self._active = first

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Draw this episode's site and reset that site's env with a seed drawn alongside."""
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self._envs)))
        self._active = self._envs[index]
        episode_seed = int(self.np_random.integers(_SEED_RANGE))
        return self._active.reset(seed=episode_seed, options=options)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Step the current episode's site."""
        observation, reward, terminated, truncated, info = self._active.step(action)
        return observation, float(reward), terminated, truncated, info

    def close(self) -> None:
        """Close every site's env."""
        for env in self._envs:
            env.close()


def make_env(
    env_id: str,
    sites: Sequence[str],
    env_kwargs: dict[str, Any],
    obs_keys: Sequence[str] = (),
    monitor_file: str | None = None,
) -> gym.Env:
    """Build one training or evaluation env.

    Args:
        env_id: Registered Gymnasium id.
        sites: One site, or several for a per-episode mix (`SiteMixEnv`).
        env_kwargs: Extra keyword arguments of the env.
        obs_keys: Observation fields to keep (empty: all).
        monitor_file: Prefix of SB3's ``.monitor.csv`` episode log; None logs nothing.

    Returns:
        The env wrapped as SuccessInfo -> FilterObservation (if `obs_keys`) -> Monitor.
    """
    import envs  # noqa: F401  # registers the env ids (also in fresh worker processes)

    if len(sites) == 1:
        env: gym.Env = gym.make(env_id, site=sites[0], **env_kwargs)
    else:
        env = SiteMixEnv(env_id, sites, env_kwargs)
    env = SuccessInfo(env)
    if obs_keys:
        env = FilterObservation(env, list(obs_keys))
    return Monitor(env, filename=monitor_file, info_keywords=("is_success",))


def make_vec_env(
    env_id: str,
    sites: Sequence[str],
    env_kwargs: dict[str, Any],
    obs_keys: Sequence[str],
    n_envs: int,
    *,
    subproc: bool,
    start_method: str = "forkserver",
    monitor_dir: Path | None = None,
) -> VecEnv:
    """`n_envs` sub-envs in this process (`DummyVecEnv`) or one process each (`SubprocVecEnv`).

    Every sub-env draws from all of `sites` (not one site per worker), so the mix does not
    depend on how many sub-envs there are.
    """
    thunks: list[Callable[[], gym.Env]] = [
        functools.partial(
            make_env,
            env_id,
            list(sites),
            dict(env_kwargs),
            list(obs_keys),
            str(monitor_dir / str(rank)) if monitor_dir is not None else None,
        )
        for rank in range(n_envs)
    ]
    if subproc:
        return SubprocVecEnv(thunks, start_method=start_method)
    return DummyVecEnv(thunks)
