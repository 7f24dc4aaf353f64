"""Expand a campaign's overrides into its trials, the way Hydra's basic sweeper does.

Used by ``testbed run --dry-run`` (list the trials and their status without running anything)
and by the campaign-wide progress view (how many trials to expect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from testbed.campaign.folders import TrialFolder, config_hashes
from testbed.config import CONFIG_DIR, TestbedConfig, register_configs, validate
from testbed.records import RECORD_GLOB


@dataclass(frozen=True)
class PlannedTrial:
    """One trial a campaign expands to, and how far it got in an earlier run."""

    name: str
    folder: Path
    overrides: tuple[str, ...]
    config: TestbedConfig
    status: str  # new | partial | done | failed
    recorded: int


def sweep_overrides(params: Mapping[str, Any] | None, arguments: Iterable[str]) -> list[str]:
    """``hydra.sweeper.params`` as overrides, followed by the command line's (which win)."""
    return [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)


def expand_jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of every job of a sweep (Hydra's basic sweeper, no batching)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [job for batch in batches for job in batch]


def plan_campaign(arguments: list[str], multirun: bool = False) -> list[PlannedTrial]:
    """Compose every trial of ``testbed run <arguments>`` and report its status.

    Raises:
        ValueError: If an override names a missing config option or key, or the config is
            invalid, naming it (before any trial starts).
    """
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        parsed = OverridesParser.create().parse_overrides(arguments)
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        plain = [o.input_line for o in parsed if not o.is_sweep_override()]
        primary = compose("config", overrides=plain, return_hydra_config=True)
        multirun = multirun or str(primary.hydra.mode) == "RunMode.MULTIRUN"
        if sweeps and not multirun:
            raise ValueError(f"{sweeps[0]}: a sweep needs -m (--multirun) or a campaign preset")
        raw = primary.hydra.sweeper.params
        params = OmegaConf.to_container(raw) if multirun and raw is not None else None
        jobs = expand_jobs(sweep_overrides(params, arguments)) if multirun else [arguments]  # type: ignore[arg-type]
        return [_planned(compose("config", overrides=job), job) for job in jobs]


def _planned(composed: Any, overrides: list[str]) -> PlannedTrial:
    config = OmegaConf.to_object(composed)
    assert isinstance(config, TestbedConfig)
    validate(config)
    folder = Path(config.campaign.dir) / config.trial_name
    trial_hash, _ = config_hashes(config)
    recorded = sum(1 for _ in folder.glob(RECORD_GLOB))
    trial = TrialFolder(folder)
    if trial.done_hash() == trial_hash:
        status = "done"
    elif (folder / "FAILED").is_file():
        status = "failed"
    else:
        status = "partial" if recorded else "new"
    return PlannedTrial(config.trial_name, folder, tuple(overrides), config, status, recorded)
