"""Make episode records for tests: the scripted controller through `EpisodeRecorder`."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import gymnasium as gym

import envs  # noqa: F401  (registers the env ids)
from policies.scripted import scripted_policy
from protos.specs import SessionInfo
from testbed.episodes.recorder import EpisodeRecorder
from testbed.episodes.records import EpisodeMeta, EpisodeRecord, Fault, record_path, write_record
from testbed.episodes.rollout import run_episode

ENV_ID = "Testbed/ConveyorSort-v0"


def record_episode(
    site: str,
    seed: int = 0,
    *,
    max_steps: int | None = 200,
    snapshot_every: int = 50,
    episode: int = 0,
    home_site: str | None = None,
    policy: str = "scripted",
    campaign: str = "test-campaign",
) -> EpisodeRecord:
    """Run the scripted controller tuned for ``home_site`` (default: ``site``) at ``site``."""
    home = home_site or site
    env = EpisodeRecorder(gym.make(ENV_ID, site=site), snapshot_every=snapshot_every)
    session = SessionInfo(
        session_id="test", site=site, campaign=campaign, episode=episode, seed=seed
    )
    try:
        start = time.perf_counter()
        result = run_episode(env, scripted_policy(home), session, max_steps=max_steps)
        wall_time_s = time.perf_counter() - start
        meta = EpisodeMeta(
            env_id=ENV_ID,
            env_kwargs={"site": site},
            site=site,
            bundle_hash=str(env.reset_info["bundle_hash"]),
            seed=seed,
            episode=episode,
            campaign=campaign,
            trial=f"{policy}-{home}-at-{site}",
            policy=policy,
            policy_id=result.policy_id,
            home_site=home,
            ended_by=result.ended_by,
            total_reward=result.total_reward,
            metrics=result.metrics,
            faults=tuple(Fault(s, k, m) for s, k, m in result.faults),
            wall_time_s=wall_time_s,
        )
        return env.record(meta, result.latencies_ms)
    finally:
        env.close()


@lru_cache(maxsize=16)
def cached_episode(
    site: str, seed: int = 0, max_steps: int = 200, snapshot_every: int = 50
) -> EpisodeRecord:
    """`record_episode`, once per arguments per test session (do not modify its arrays)."""
    return record_episode(site, seed, max_steps=max_steps, snapshot_every=snapshot_every)


def write_episode(campaign_dir: Path, record: EpisodeRecord) -> Path:
    """Write ``record`` where a campaign puts it: ``<campaign_dir>/<trial>/episodes/ep-N.npz``."""
    return write_record(record_path(campaign_dir / record.meta.trial, record.meta.episode), record)
