"""The Hydra entry point of ``testbed run``: one call = one trial (the launcher runs many).

The only module that calls ``hydra.main``. Code below it receives a `TestbedConfig`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from testbed.campaign.trial import TrialOutcome, run_trial
from testbed.config import CONFIG_DIR, TestbedConfig, register_configs

log = logging.getLogger(__name__)
register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run_job(cfg: DictConfig) -> TrialOutcome:
    """Run the trial the composed config describes in Hydra's output folder for the job."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, TestbedConfig)
    outcome = run_trial(config, Path(HydraConfig.get().runtime.output_dir))
    level = logging.WARNING if outcome.status == "failed" else logging.INFO
    log.log(level, "trial %s: %s (%d episodes run) %s", outcome.trial, outcome.status,
            outcome.episodes_run, outcome.reason)  # fmt: skip
    return outcome
