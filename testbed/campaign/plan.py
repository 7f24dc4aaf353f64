"""Expand a campaign's overrides into its trials, the way Hydra's basic sweeper does.

Used by ``testbed run --dry-run`` (list the trials and their status without running anything)
and by the campaign-wide progress view (how many trials to expect).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from testbed.campaign.folders import TrialFolder, config_hashes
from testbed.campaign.stores import trial_folder
from testbed.config import CONFIG_DIR, TestbedConfig, register_configs, validate
from testbed.episodes.records import RECORD_GLOB


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
        sweeps = [str(o.input_line) for o in parsed if o.is_sweep_override()]
        plain = [str(o.input_line) for o in parsed if not o.is_sweep_override()]
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
    folder = trial_folder(config)
    status, recorded = trial_status(config, folder)
    return PlannedTrial(config.trial_name, folder, tuple(overrides), config, status, recorded)


def trial_status(config: TestbedConfig, folder: Path) -> tuple[str, int]:
    """(``new`` | ``partial`` | ``done`` | ``failed``, episodes recorded) of a trial's folder."""
    recorded = sum(1 for _ in folder.glob(RECORD_GLOB))
    if TrialFolder(folder).done_hash() == config_hashes(config)[0]:
        return "done", recorded
    if (folder / "FAILED").is_file():
        return "failed", recorded
    return ("partial" if recorded else "new"), recorded


def collisions(trials: list[PlannedTrial]) -> list[str]:
    """Why some trials of a sweep would share a folder (each would spoil the other's records).

    A trial's folder is ``<campaign.dir or its site's store>/<policy.name>__<site.id>__s<seed>``,
    so trials that differ only in another option (``policy.mode``, ``task.max_steps``, ...)
    collide, and so do trials listed twice. Returns one message per colliding pair, naming what
    differs.
    """
    first: dict[Path, int] = {}
    problems = []
    for number, trial in enumerate(trials):
        earlier = first.setdefault(trial.folder, number)
        if earlier != number:
            problems.append(_collision(trials[earlier], earlier, trial, number))
    return problems


def _collision(a: PlannedTrial, a_number: int, b: PlannedTrial, b_number: int) -> str:
    where = f"trials #{a_number + 1} and #{b_number + 1} would both write {a.folder}"
    differing = _differences(_flat(a.config), _flat(b.config))
    what = ", ".join(f"{k} ({x!r} vs {y!r})" for k, (x, y) in differing.items())
    if config_hashes(a.config) == config_hashes(b.config):
        same = f"; they differ only in {what}, which changes no result" if differing else ""
        return f"{where}: the sweep lists the same trial twice ({_args(a)} / {_args(b)}){same}"
    if "site.path" in differing:
        hint = "two bundles with the same site_id: give each bundle its own site_id"
    else:
        hint = ("the folder is named after policy.name, site.id and seed only: give each its "
                "own policy.name")  # fmt: skip
        key = next((k for k, v in differing.items() if _nameable(*v)), None)
        hint += f", e.g. 'policy.name={a.config.policy.name}_${{{key}}}'" if key else ""
    return f"{where} but differ in {what}; {hint}"


def _nameable(*values: Any) -> bool:
    """True if every value reads well inside a folder name (``stream``, ``120``)."""
    return all(
        isinstance(v, str | int | float) and re.fullmatch(r"[\w.-]{1,24}", str(v)) is not None
        for v in values
    )


def _args(trial: PlannedTrial) -> str:
    return " ".join(trial.overrides) or "no overrides"


def _flat(config: TestbedConfig) -> dict[str, Any]:
    """The resolved config as ``{dotted.key: value}``."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = node

    walk(OmegaConf.to_container(OmegaConf.structured(config)), "")
    return flat


def _differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
