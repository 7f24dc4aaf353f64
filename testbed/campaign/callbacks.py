"""`CampaignCallback`: what the launching process does around every run, with or without ``-m``.

Before the trials: write ``campaign.json`` (name, overrides, config) and, for a multirun, start
the campaign-wide progress view. After them (whatever the launcher: basic, joblib, Ray, SLURM):
summarise the trials and their failures from the campaign folder, print the success matrix and
the largest transfer gaps, and write the report. A single run's campaign folder is the parent
of its trial folder (``campaign.dir``), a multirun's is ``hydra.sweep.dir`` (the same by default).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from testbed.campaign.plan import expand_jobs, sweep_overrides
from testbed.campaign.progress import QUIET_ENV, CampaignMonitor
from testbed.campaign.stores import per_site, store_roots
from testbed.campaign.summary import finish_campaign
from testbed.episodes.records import atomic_write_text

#: The running progress view. Module state, not an attribute: launchers pickle the callbacks
#: along with each job, and a thread cannot be pickled.
_monitor: CampaignMonitor | None = None


class CampaignCallback(Callback):
    """Hydra callback registered in ``configs/config.yaml`` (``hydra.callbacks.campaign``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the campaign of a single run (one trial)."""
        _record_campaign(config, _run_dir(config), trials=1, multirun=False)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise the campaign folder and write the report, as after a multirun."""
        finish_campaign(_run_dir(config), write=bool(config.campaign.report))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the campaign and start the progress view."""
        campaign_dir = Path(config.hydra.sweep.dir)
        raw = config.hydra.sweeper.params
        params = OmegaConf.to_container(raw) if raw is not None else {}
        arguments = list(config.hydra.overrides.task)
        jobs = expand_jobs(sweep_overrides(params, arguments))  # type: ignore[arg-type]
        _record_campaign(config, campaign_dir, trials=len(jobs), multirun=True)
        if config.campaign.progress:
            global _monitor
            os.environ[QUIET_ENV] = "1"  # trial processes inherit it: one view, not N bars
            federated, stores = bool(config.campaign.federated), dict(config.campaign.stores)

            def roots() -> list[Path]:
                return store_roots(campaign_dir, federated, stores)

            _monitor = CampaignMonitor(campaign_dir, len(jobs), config.campaign.episodes, roots)
            _monitor.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise trials and failures, then write the report."""
        global _monitor
        if _monitor is not None:
            _monitor.stop()
            _monitor = None
        os.environ.pop(QUIET_ENV, None)
        finish_campaign(Path(config.hydra.sweep.dir), write=bool(config.campaign.report))


def _run_dir(config: DictConfig) -> Path:
    """The campaign folder of a single run: its trial folder's parent, or ``campaign.dir``.

    (``campaign.dir`` when the trial is in its site's store.)
    """
    campaign = config.campaign
    if per_site(campaign.federated, campaign.stores):
        return Path(campaign.dir)
    return Path(config.hydra.run.dir).parent


def _record_campaign(config: DictConfig, campaign_dir: Path, trials: int, multirun: bool) -> None:
    """Write ``campaign.json``: name, overrides, sweep, planned trials, launcher, config."""
    raw = config.hydra.sweeper.params
    body = {k: v for k, v in config.items() if k != "hydra"}
    launcher = "none (one trial)"
    if multirun:
        launcher = config.hydra.runtime.choices.get("hydra/launcher", "")
    atomic_write_text(
        campaign_dir / "campaign.json",
        json.dumps(
            {
                "name": config.campaign.name,
                "overrides": list(config.hydra.overrides.task),
                "sweep": OmegaConf.to_container(raw) if multirun and raw is not None else None,
                "trials": trials,
                "launcher": str(launcher),
                "config": OmegaConf.to_container(DictConfig(body), resolve=True),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=2,
            default=str,
        ),
    )
