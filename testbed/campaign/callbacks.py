"""`CampaignCallback`: what the launching process does around a multirun.

Before the trials: write ``campaign.json`` (name, overrides, config) and start the campaign-wide
progress view. After them (whatever the launcher: joblib, Ray, SLURM): summarise the trials and
their failures from the campaign folder, and write the report.
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
from testbed.campaign.summary import print_summary, summarise
from testbed.records import atomic_write_text

#: The running progress view. Module state, not an attribute: launchers pickle the callbacks
#: along with each job, and a thread cannot be pickled.
_monitor: CampaignMonitor | None = None


class CampaignCallback(Callback):
    """Hydra callback registered in ``configs/config.yaml`` (``hydra.callbacks.campaign``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the campaign and start the progress view."""
        campaign_dir = Path(config.hydra.sweep.dir)
        arguments = list(config.hydra.overrides.task)
        raw = config.hydra.sweeper.params
        params = OmegaConf.to_container(raw) if raw is not None else {}
        jobs = expand_jobs(sweep_overrides(params, arguments))  # type: ignore[arg-type]
        body = {k: v for k, v in config.items() if k != "hydra"}
        atomic_write_text(
            campaign_dir / "campaign.json",
            json.dumps(
                {
                    "name": config.campaign.name,
                    "overrides": arguments,
                    "sweep": params,
                    "trials": len(jobs),
                    "launcher": str(config.hydra.runtime.choices.get("hydra/launcher", "")),
                    "config": OmegaConf.to_container(DictConfig(body), resolve=True),
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
                default=str,
            ),
        )
        if config.campaign.progress:
            global _monitor
            os.environ[QUIET_ENV] = "1"  # trial processes inherit it: one view, not N bars
            _monitor = CampaignMonitor(campaign_dir, len(jobs), config.campaign.episodes)
            _monitor.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise trials and failures, then write the report."""
        global _monitor
        if _monitor is not None:
            _monitor.stop()
            _monitor = None
        os.environ.pop(QUIET_ENV, None)
        campaign_dir = Path(config.hydra.sweep.dir)
        summary = summarise(campaign_dir)
        report = None
        if config.campaign.report and summary.episodes:
            from testbed.report import write_report

            report = write_report(campaign_dir).html
        print_summary(summary, report)
