"""`TrialFolder`: the files of one trial (records, table, markers) and the hashes that key them."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from envs.sites import list_sites, resolve_site
from testbed.config import TestbedConfig
from testbed.episodes.records import (
    RECORD_GLOB,
    EpisodeRecord,
    atomic_write_bytes,
    atomic_write_text,
    read_meta,
    record_path,
    write_record,
)
from testbed.episodes.rows import episode_row
from testbed.errors import CampaignError

DONE, FAILED, TRIAL_JSON, TABLE = "DONE", "FAILED", "trial.json", "episodes.parquet"
#: Settings that change where or how visibly a trial runs, never its results.
_PRESENTATION = ("name", "dir", "workers", "progress", "report", "federated", "stores")
#: How a policy is reached, not which policy it is (a server may move between runs; a batch
#: mode episode records what unary records, whatever the batch size; packed and named
#: observations reach the policy as the same arrays, and so do raw and PNG images: lossless).
_REACH = ("address", "tls", "token_env", "startup_timeout_s", "max_restarts", "batch_size",
          "observation_form", "image_encoding")  # fmt: skip
_PACKAGES = ("physical-ai-testbed", "pybullet", "gymnasium", "numpy", "grpcio", "protobuf",
             "hydra-core", "stable-baselines3", "torch")  # fmt: skip


def config_hashes(config: TestbedConfig) -> tuple[str, str]:
    """(trial hash, episode hash) of a resolved config.

    The trial hash keys the completion marker; the episode hash (the same without the number of
    episodes) keys each record, so raising ``campaign.episodes`` reuses the episodes already run.
    """
    data = OmegaConf.to_container(OmegaConf.structured(config))
    assert isinstance(data, dict)
    campaign = {k: v for k, v in data["campaign"].items() if k not in _PRESENTATION}
    policy = {k: v for k, v in data["policy"].items() if k not in _REACH}
    if not policy.get("team"):
        policy.pop("team", None)  # no team named: the hashes of configs that predate teams
    site = data["site"]
    if site["path"] == site["id"] and site["id"] in list_sites():
        site = {**site, "path": None}  # site.path=kr-changwon is site=kr-changwon: one trial
    data.pop("energy", None)  # how compute is measured and priced, never what an episode does
    trial = {**data, "campaign": campaign, "policy": policy, "site": site}
    episode = {**trial, "campaign": {k: v for k, v in campaign.items() if k != "episodes"}}
    return _digest(trial), _digest(episode)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def asset_hashes(site: str) -> dict[str, str]:
    """sha256 of every file of the site's factory bundle, by bundle-relative name."""
    root = resolve_site(site)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


@cache
def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result (absent ones are skipped)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class TrialFolder:
    """One trial's output folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def done_hash(self) -> str | None:
        """The config hash the DONE marker was written for, if any."""
        marker = self.path / DONE
        if not marker.is_file():
            return None
        try:
            return str(json.loads(marker.read_text())["config_hash"])
        except (ValueError, KeyError, TypeError):
            return None  # a damaged marker: the trial reruns its missing episodes

    def recorded_episodes(self, episode_hash: str) -> set[int]:
        """Indices of the episodes already recorded for this config (stale temp files removed).

        Raises:
            CampaignError: If a record was made with a different config.
        """
        for stale in [*self.path.glob("episodes/.ep-*.tmp"), *self.path.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)  # a write interrupted by a kill (records, markers)
        done = set()
        for path in sorted(self.path.glob(RECORD_GLOB)):
            meta = read_meta(path)
            if meta.config_hash != episode_hash:
                raise CampaignError(
                    f"{self.path}: holds episodes recorded with another config (hash "
                    f"{meta.config_hash}, now {episode_hash}); use a new campaign.name or "
                    "move the folder away"
                )
            done.add(meta.episode)
        return done

    def write_episode(self, record: EpisodeRecord) -> Path:
        """Write a record atomically under its episode index."""
        return write_record(record_path(self.path, record.meta.episode), record)

    def write_trial_json(self, data: dict[str, Any]) -> None:
        """Write ``trial.json``."""
        atomic_write_text(self.path / TRIAL_JSON, json.dumps(data, indent=2, default=str))

    def write_table(self) -> pd.DataFrame:
        """Rebuild ``episodes.parquet`` from the records (the records are the truth)."""
        rows = []
        for path in sorted(self.path.glob(RECORD_GLOB)):
            with np.load(path, allow_pickle=False) as data:
                latencies = data["latencies_ms"]
            rows.append(
                {
                    **episode_row(read_meta(path), latencies),
                    "record": path.relative_to(self.path).as_posix(),
                }
            )
        table = pd.DataFrame(rows)
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(self.path / TABLE, buffer.getvalue())
        return table

    def mark_done(self, config_hash: str, episodes: int) -> None:
        """Write the completion marker."""
        self._mark(DONE, {"config_hash": config_hash, "episodes": episodes})
        (self.path / FAILED).unlink(missing_ok=True)

    def mark_failed(self, reason: str) -> None:
        """Write why the trial stopped (a rerun retries it)."""
        self._mark(FAILED, {"reason": reason})

    def clear_failed(self) -> None:
        """Forget a previous failure before a new attempt."""
        (self.path / FAILED).unlink(missing_ok=True)

    def _mark(self, name: str, data: dict[str, Any]) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_text(self.path / name, json.dumps({**data, "at": stamp}))
