"""Helpers for campaign tests: compose configs, run the CLI, find managed servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed.campaign.plan import plan_campaign
from testbed.config import TestbedConfig
from testbed.episodes.records import RECORD_GLOB, read_meta

#: Short episodes on two sites: enough to exercise every path in seconds.
FAST = ["task.max_steps=120", "task.snapshot_every=40", "campaign.progress=false"]


def compose(overrides: list[str]) -> TestbedConfig:
    """The single trial ``testbed run <overrides>`` describes."""
    (trial,) = plan_campaign(overrides)
    return trial.config


def run_cli(
    args: list[str], cwd: Path, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess:
    """``testbed <args>`` in a fresh process (bounded by ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "1", **env},
        stdin=subprocess.DEVNULL,
    )


def episodes(campaign_dir: Path) -> list[tuple[str, int, int]]:
    """(trial, episode, seed) of every record under a campaign folder, sorted."""
    return sorted(
        (m.trial, m.episode, m.seed)
        for m in (read_meta(p) for p in Path(campaign_dir).glob(f"*/{RECORD_GLOB}"))
    )


def managed_servers() -> list[int]:
    """PIDs of ``testbed serve`` processes started by this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and "testbed serve" in cmdline:
            found.append(int(entry.name))
    return found
