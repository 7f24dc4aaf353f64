"""Where a trial's records live: the campaign folder, or its site's own store.

A campaign keeps every trial in its folder (``<campaign.dir>/<trial>/``) unless it has per-site
stores: ``campaign.federated=true`` (each site's store is ``<campaign.dir>/stores/<site>/``) or
a store named for a site (``campaign.stores.<site>=PATH``; naming one turns the layout on for
every site of the campaign). Then every trial runs into ``<its site's store>/<trial>/``, so its
records, table, log and markers never land in another site's store, and the campaign folder
itself holds only ``campaign.json`` and the coordinator's report, built from what the sites let
out (`testbed.campaign.federated`).

The same rule places a trial for the Hydra entry point (``hydra.run.dir`` and
``hydra.sweep.subdir`` call the ``${testbed_trial_dir:}`` resolver), for ``--dry-run`` and
resume (`testbed.campaign.plan`) and for the end of the run (`campaign_stores`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.config import trial_name
from testbed.episodes.records import RECORD_GLOB

#: The folder under the campaign folder that holds the default per-site stores.
STORES_DIR = "stores"


def per_site(federated: bool, stores: Mapping[str, Any] | None) -> bool:
    """True when the campaign keeps each site's trials in the site's own store."""
    return bool(federated) or bool(stores)


def site_store(campaign_dir: str | Path, site: str, federated: bool,
               stores: Mapping[str, Any] | None) -> Path:  # fmt: skip
    """The folder a site's trials go into (the campaign folder without per-site stores)."""
    if not per_site(federated, stores):
        return Path(campaign_dir)
    if stores and stores.get(site):
        return Path(str(stores[site])).expanduser()
    return Path(campaign_dir) / STORES_DIR / site


def trial_folder(config: Any) -> Path:
    """The folder of the trial a `TestbedConfig` (or a composed ``DictConfig``) describes."""
    campaign = config.campaign
    store = site_store(campaign.dir, config.site.id, campaign.federated, campaign.stores)
    return store / trial_name(config)


def trial_dir_resolver(form: str = "", *, _root_: Any) -> str:
    """``${testbed_trial_dir:}``: the trial's folder, relative to ``campaign.dir`` when inside.

    ``hydra.sweep.subdir`` joins it to ``hydra.sweep.dir`` (``campaign.dir``); an absolute one
    (a store outside the campaign folder) replaces it, as ``os.path.join`` does.
    ``${testbed_trial_dir:full}`` (``hydra.run.dir``) is the folder itself.
    """
    folder = trial_folder(_root_)
    if form == "full":
        return str(folder)
    campaign_dir = Path(str(_root_.campaign.dir))
    try:
        return folder.relative_to(campaign_dir).as_posix()
    except ValueError:
        return os.path.abspath(folder)


def campaign_stores(campaign_dir: Path, campaign: Mapping[str, Any] | None) -> dict[str, Path]:
    """Every site store of a campaign that holds records, by site (empty without per-site stores).

    Args:
        campaign_dir: The campaign folder.
        campaign: ``campaign.json``'s contents (its ``config.campaign`` names the stores).
    """
    settings = ((campaign or {}).get("config") or {}).get("campaign") or {}
    named = settings.get("stores") or {}
    if not per_site(bool(settings.get("federated")), named):
        return {}
    found: dict[str, Path] = {}
    defaults = Path(campaign_dir) / STORES_DIR
    for folder in sorted(defaults.iterdir()) if defaults.is_dir() else ():
        found[folder.name] = folder
    for site, path in named.items():
        found[str(site)] = Path(str(path)).expanduser()
    return {site: path for site, path in found.items() if any(path.glob(f"*/{RECORD_GLOB}"))}


def store_roots(
    campaign_dir: Path, federated: bool, stores: Mapping[str, Any] | None
) -> list[Path]:
    """The folders that hold a campaign's trial folders right now (for the progress view)."""
    if not per_site(federated, stores):
        return [Path(campaign_dir)]
    defaults = Path(campaign_dir) / STORES_DIR
    found = sorted(defaults.iterdir()) if defaults.is_dir() else []
    return found + [Path(str(p)).expanduser() for p in (stores or {}).values()]
