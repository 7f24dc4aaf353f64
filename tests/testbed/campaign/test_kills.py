"""A campaign SIGKILLed at random points, then rerun, ends with an uninterrupted run's episodes.

For each seed the kill lands at a random moment of the run (during start-up, inside an
episode, while a record or marker is written, between trials); the rerun must then give the same
(trial, episode, seed) set as a run that was never interrupted, every record readable and
identical, no duplicates and no temporary files left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from testbed.episodes.records import RECORD_GLOB, read_record

from .helpers import episodes, run_cli

ARGS = ["-m", "policy=scripted_kr_inprocess", "site=kr-changwon,jp-nagoya", "campaign.episodes=3",
        "task.max_steps=60", "task.snapshot_every=20", "campaign.progress=false",
        "campaign.report=false"]  # fmt: skip
SEEDS = [0, 1, 2, 3]
SURVIVED: list[int] = []


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted run, and how long it took."""
    folder = tmp_path_factory.mktemp("reference")
    start = time.monotonic()
    result = run_cli(["run", *ARGS, f"campaign.dir={folder / 'c'}"], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "c", time.monotonic() - start


@pytest.fixture(scope="module", autouse=True)
def report(pytestconfig: pytest.Config):
    yield
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter and capture and SURVIVED:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nSIGKILLs survived: {len(SURVIVED)} (seeds {SURVIVED})")


def _kill_at(delay_s: float, campaign_dir: Path, cwd: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", *ARGS, f"campaign.dir={campaign_dir}"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        process.wait(delay_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the campaign and anything it started
        process.wait(10)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_campaign_killed_at_a_random_point_resumes_to_the_same_episodes(
    reference: tuple[Path, float], seed: int, tmp_path: Path
) -> None:
    reference_dir, duration_s = reference
    delay_s = random.Random(seed).uniform(0.2, duration_s)  # anywhere in a full run
    campaign_dir = tmp_path / "c"
    _kill_at(delay_s, campaign_dir, tmp_path)
    before = episodes(campaign_dir) if campaign_dir.exists() else []

    rerun = run_cli(["run", *ARGS, f"campaign.dir={campaign_dir}"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after, expected = episodes(campaign_dir), episodes(reference_dir)
    assert after == expected  # the same set, and no (trial, episode) twice
    assert set(before) <= set(after)
    assert not [p for p in campaign_dir.glob("*/**/*") if p.name.endswith(".tmp")]  # in trials
    for path in reference_dir.glob(f"*/{RECORD_GLOB}"):
        mine, theirs = (
            read_record(campaign_dir / path.relative_to(reference_dir)),
            read_record(path),
        )
        assert np.array_equal(mine.actions, theirs.actions)
        assert mine.meta.seed == theirs.meta.seed and mine.steps == theirs.steps
    assert all((trial / "DONE").is_file() for trial in campaign_dir.iterdir() if trial.is_dir())
    SURVIVED.append(seed)
