"""`testbed run` end to end in subprocesses: launchers, rerun, resume after a kill."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from testbed.episodes.records import RECORD_GLOB, read_record

from .helpers import FAST, episodes, run_cli

SMOKE = ["+campaign=smoke", *FAST, "campaign.report=false"]


def _trial_markers(campaign_dir: Path) -> dict[str, bool]:
    return {
        p.name: (p / "DONE").is_file()
        for p in campaign_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".")
    }


def test_a_joblib_multirun_records_every_trial_and_a_rerun_skips_them(tmp_path) -> None:
    campaign_dir = tmp_path / "smoke"
    result = run_cli(["run", *SMOKE, f"campaign.dir={campaign_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _trial_markers(campaign_dir) == {
        f"{p}__{s}__s0": True
        for p in ("scripted_kr", "scripted_jp") for s in ("kr-changwon", "jp-nagoya")
    }  # fmt: skip
    recorded = episodes(campaign_dir)
    assert len(recorded) == 8
    seeds = {trial: [s for t, _, s in recorded if t == trial] for trial, _, _ in recorded}
    assert len({tuple(v) for v in seeds.values()}) == 1  # the same seeds at every site
    assert "4/4 trials done, 8 episodes recorded" in result.stdout

    stamps = {p: p.stat().st_mtime_ns for p in campaign_dir.glob(f"*/{RECORD_GLOB}")}
    again = run_cli(["run", *SMOKE, f"campaign.dir={campaign_dir}"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rerun
    listing = run_cli(["run", "--dry-run", *SMOKE, f"campaign.dir={campaign_dir}"], tmp_path)
    assert listing.returncode == 0 and listing.stdout.count("done") == 4


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", *args],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def test_a_campaign_killed_half_way_resumes_without_losing_or_repeating_episodes(tmp_path) -> None:
    args = ["-m", "policy=scripted_kr_inprocess", "site=kr-changwon,jp-nagoya",
            "campaign.episodes=5", *FAST, "campaign.report=false"]  # fmt: skip
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    process = _start([*args, f"campaign.dir={killed_dir}"], tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(episodes(killed_dir)) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the campaign and any worker it started
    process.wait(10)
    before = episodes(killed_dir)
    assert 3 <= len(before) < 10, "the kill should land half-way"

    resumed = run_cli(["run", *args, f"campaign.dir={killed_dir}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = run_cli(["run", *args, f"campaign.dir={reference_dir}"], tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert episodes(killed_dir) == episodes(reference_dir)  # same set, no duplicates
    assert len(episodes(killed_dir)) == 10
    assert set(before) <= set(episodes(killed_dir))
    for path in reference_dir.glob(f"*/{RECORD_GLOB}"):
        mine = read_record(killed_dir / path.relative_to(reference_dir))
        theirs = read_record(path)
        assert np.array_equal(mine.actions, theirs.actions)
        assert all(np.array_equal(mine.observations[k], v) for k, v in theirs.observations.items())
    assert all(_trial_markers(killed_dir).values())


def test_the_submitit_local_launcher_runs_the_same_campaign(tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    campaign_dir = tmp_path / "smoke"
    result = run_cli(["run", *SMOKE, "hydra/launcher=submitit_local",
                      f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(episodes(campaign_dir)) == 8
    assert all(_trial_markers(campaign_dir).values())


@pytest.fixture
def ray_head():
    """A one-node Ray cluster on 127.0.0.1, stopped afterwards."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    assert ray, "the ray CLI is installed with the cluster extra"
    # Without this Ray replaces 127.0.0.1 by the machine's outside address.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with socket.socket() as probe:  # a free port on 127.0.0.1
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix sockets: paths < 108 bytes
    start = subprocess.run(
        [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_the_ray_launcher_runs_the_same_campaign_on_a_local_cluster(ray_head, tmp_path) -> None:
    address, env = ray_head
    campaign_dir = tmp_path / "smoke"
    result = run_cli(["run", *SMOKE, "hydra/launcher=ray_cluster",
                      f"campaign.dir={campaign_dir}"], tmp_path,
                     RAY_ADDRESS=address, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(episodes(campaign_dir)) == 8
    assert all(_trial_markers(campaign_dir).values())


def test_a_bad_sweep_value_stops_the_run_before_any_trial(tmp_path) -> None:
    campaign_dir = tmp_path / "bad"
    result = run_cli(["run", "-m", "site=kr-changwon,nowhere-plant", "policy=scripted_kr",
                      f"campaign.dir={campaign_dir}"], tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert "nowhere-plant" in result.stderr + result.stdout
    assert not campaign_dir.exists()  # nothing started, nothing written
