"""`run_trial`: one policy at one site for a block of seeded episodes, resumable.

A trial writes only inside its own folder::

    trial.json            resolved config, its hashes, site bundle and asset hashes, policy id,
                          package versions
    episodes/ep-NNNNN.npz one record per episode (atomic: present means complete)
    episodes.parquet      one row per recorded episode (rewritten after each episode)
    policy_server.log     output of a managed policy server
    DONE | FAILED         completion marker keyed by the config hash | why the trial stopped

Rerunning a finished trial (same config hash) does nothing; rerunning an interrupted one runs
only the episodes that have no record, so no episode is lost or counted twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym

from protos.compute import ComputeMeter
from testbed.campaign.batch import FATAL, run_batched
from testbed.campaign.connect import PolicyConnection
from testbed.campaign.folders import (
    TrialFolder,
    asset_hashes,
    config_hashes,
    package_versions,
)
from testbed.campaign.progress import episode_progress
from testbed.campaign.teams import policy_team, refused_identity
from testbed.config import TestbedConfig, validate
from testbed.episodes.damaged_records import set_aside_damaged
from testbed.episodes.recorder import EpisodeRecorder
from testbed.episodes.records import EpisodeMeta, Fault
from testbed.episodes.rollout import EpisodeResult, run_episode
from testbed.errors import PolicyAuthError, PolicyUnavailableError
from testbed.link.policy import SessionInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial job did (returned to the launcher, summarised at the end of the run)."""

    trial: str
    status: str  # done | skipped | failed
    episodes: int
    episodes_run: int
    fault_episodes: int
    reason: str = ""


def run_trial(config: TestbedConfig, trial_dir: Path) -> TrialOutcome:
    """Run (or resume) the trial ``config`` describes inside ``trial_dir``.

    Any failure (an unreachable policy, records of another config in the folder, a crash) is
    written to the trial's FAILED marker and returned, so one trial cannot stop a campaign.

    Raises:
        ValueError: If the config is invalid (naming the key).
    """
    validate(config)
    folder = TrialFolder(Path(trial_dir))
    trial_hash, episode_hash = config_hashes(config)
    # Damaged records are set aside first: their episodes run again, even in a DONE trial.
    if not set_aside_damaged(folder.path) and folder.done_hash() == trial_hash:
        n = len(config.seeds)
        return TrialOutcome(config.trial_name, "skipped", n, 0, 0, "already complete")
    try:
        folder.clear_failed()
        recorded = folder.recorded_episodes(episode_hash)
        return _run(config, folder, trial_hash, episode_hash, recorded)
    except Exception as exc:  # noqa: BLE001  # any crash: marked on the trial, summarised
        reason = f"{type(exc).__name__}: {exc}"
        try:
            folder.mark_failed(reason)
        except OSError as marker:  # a full disk or an unwritable folder: say it in the log
            reason += f"; the FAILED marker could not be written either ({marker})"
            log.error("trial %s failed: %s", config.trial_name, reason)
        return TrialOutcome(config.trial_name, "failed", len(config.seeds), 0, 0, reason)


def _run(
    config: TestbedConfig,
    folder: TrialFolder,
    trial_hash: str,
    episode_hash: str,
    recorded: set[int],
) -> TrialOutcome:
    todo = [(i, s) for i, s in enumerate(config.seeds) if i not in recorded]
    lanes = min(config.policy.batch_size, len(todo)) if config.policy.mode == "batch" else 1
    envs = [_make_env(config) for _ in range(max(lanes, 1))]
    run = _TrialRun(config, folder, envs[0], episode_hash)
    try:
        with PolicyConnection(config.policy, envs[0].observation_space, envs[0].action_space,
                              folder.path, config.task.env_id,
                              _server_energy(config)) as connection:  # fmt: skip
            run.team = policy_team(config.policy)
            try:
                spec = connection.policy.spec()  # type: ignore[union-attr]
            except PolicyAuthError as exc:  # another team's credential, or none
                raise PolicyAuthError(refused_identity(config.policy, run.team, exc)) from None
            run.policy_id = f"{spec.policy_id}@{spec.version}"
            folder.write_trial_json(_trial_json(config, run, trial_hash, episode_hash))
            if config.policy.mode == "batch":
                stopped = run_batched(run, connection, todo, envs)
            else:
                stopped = run.episodes(connection, todo)
    finally:
        for env in envs:
            env.close()
    folder.write_table()
    total = len(config.seeds)
    if stopped:
        folder.mark_failed(stopped)
        return TrialOutcome(config.trial_name, "failed", total, run.count, run.faulty, stopped)
    folder.mark_done(trial_hash, total)
    return TrialOutcome(config.trial_name, "done", total, run.count, run.faulty)


def _make_env(config: TestbedConfig) -> EpisodeRecorder:
    env = gym.make(config.task.env_id, site=config.site.source, **config.task.env_kwargs)
    return EpisodeRecorder(env, snapshot_every=config.task.snapshot_every)


class _TrialRun:
    """The episode loop of one trial attempt.

    Unary and stream mode; batch mode is `testbed.campaign.batch`, which records through `save`.
    """

    def __init__(
        self, config: TestbedConfig, folder: TrialFolder, env: EpisodeRecorder, episode_hash: str
    ) -> None:
        self.config, self.folder, self.env, self.episode_hash = config, folder, env, episode_hash
        self.policy_id = ""
        self.team = ""
        self.count = 0
        self.faulty = 0
        energy = config.energy
        self.meter = ComputeMeter(energy.counter, energy.watts_per_core)

    def episodes(self, connection: PolicyConnection, todo: list[tuple[int, int]]) -> str:
        """Run the missing episodes; returns why the trial stopped early, or ``""``.

        An episode the policy was unreachable for is not recorded; the trial then ends FAILED
        (never DONE), so a rerun retries it instead of skipping it for good.
        """
        unreachable, skipped = 0, []
        campaign = self.config.campaign
        with episode_progress(self.config.trial_name, len(todo), campaign.progress) as advance:
            for index, seed in todo:
                result = self._episode(connection, index, seed)
                kind = result.faults[0][1] if result.faults and result.steps == 0 else ""
                if kind in FATAL:
                    return f"{kind}: {result.faults[0][2]}"
                if kind == PolicyUnavailableError.__name__:  # never started: not an episode
                    if connection.recover():
                        result = self._episode(connection, index, seed)
                    if result.steps == 0 and result.ended_by == "fault":
                        unreachable += 1
                        if unreachable >= campaign.max_unavailable_episodes:
                            return f"policy unreachable: {result.faults[0][2]}"
                        skipped.append(index)
                        continue
                unreachable = 0
                self.save(index, seed, result, self.env, self._wall_time_s)
                advance()
        if skipped:
            return f"policy unreachable for episode(s) {skipped}; rerun the campaign to run them"
        return ""

    def _episode(self, connection: PolicyConnection, index: int, seed: int) -> EpisodeResult:
        session = SessionInfo(
            session_id=self.config.trial_name,
            site=self.config.site.id,
            campaign=self.config.campaign.name,
            episode=index,
            seed=seed,
        )
        start = time.perf_counter()
        result = run_episode(
            self.env,
            connection.policy,  # type: ignore[arg-type]
            session,
            max_steps=self.config.task.max_steps,
            max_consecutive_faults=self.config.campaign.max_consecutive_faults,
            policy_id=self.policy_id,
            meter=self.meter,
        )
        self._wall_time_s = time.perf_counter() - start
        return result

    def save(
        self, index: int, seed: int, result: EpisodeResult, env: EpisodeRecorder, wall_s: float
    ) -> None:
        """Write the record of episode ``index`` that ``env`` just ran (atomically)."""
        config = self.config
        meta = EpisodeMeta(
            env_id=config.task.env_id,
            env_kwargs={"site": config.site.source, **config.task.env_kwargs},
            site=config.site.id,
            bundle_hash=str(env.reset_info.get("bundle_hash", "")),
            seed=seed,
            episode=index,
            campaign=config.campaign.name,
            trial=config.trial_name,
            policy=config.policy.name,
            policy_id=self.policy_id,
            team=self.team,
            home_site=config.policy.home_site,
            policy_seed=config.policy.seed,
            ended_by=result.ended_by,
            total_reward=result.total_reward,
            metrics=result.metrics,
            faults=tuple(Fault(s, k, m) for s, k, m in result.faults),
            compute=self._compute(result),
            wall_time_s=wall_s,
            config_hash=self.episode_hash,
            versions=package_versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.folder.write_episode(env.record(meta, result.latencies_ms))
        self.count += 1
        self.faulty += bool(result.faults)

    def _compute(self, result: EpisodeResult) -> dict[str, Any]:
        """The record's compute: the tally, this meter's watts (in-process only), the price."""
        energy = self.config.energy
        ours = self.config.policy.kind != "remote"  # in-process, or a server we started
        watts = energy.watts_per_core if ours else None  # a remote server's figure is its own
        return result.compute.summary(watts, energy.price_per_kwh, energy.currency)


def _server_energy(config: TestbedConfig) -> list[str]:
    """``testbed serve`` options that make a managed server measure as ``energy`` says."""
    energy = config.energy
    return ["--energy-counter", energy.counter, "--watts-per-core", repr(energy.watts_per_core)]


def _trial_json(
    config: TestbedConfig, run: _TrialRun, trial_hash: str, episode_hash: str
) -> dict[str, Any]:
    from omegaconf import OmegaConf

    policy = config.policy
    policy_id = run.policy_id
    return {
        "campaign": config.campaign.name,
        "trial": config.trial_name,
        "policy": {
            "name": policy.name,
            "kind": policy.kind,
            "home_site": policy.home_site,
            "policy_id": policy_id,
            "id": policy_id.rpartition("@")[0],
            "version": policy_id.rpartition("@")[2],
            "team": run.team,
            "seed": policy.seed,
        },
        "site": config.site.id,
        "seeds": config.seeds,
        "episodes": len(config.seeds),
        "config": json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(config)))),
        "config_hash": trial_hash,
        "episode_config_hash": episode_hash,
        "asset_hashes": asset_hashes(config.site.source),
        "versions": package_versions(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
