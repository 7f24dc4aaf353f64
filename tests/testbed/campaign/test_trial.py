"""One trial in-process: faults are recorded, unreachable policies end the trial cleanly."""

from __future__ import annotations

import os
import signal
import threading
import time

from testbed.campaign.trial import run_trial
from testbed.episodes.records import RECORD_GLOB, read_meta

from .helpers import FAST, compose, managed_servers


def test_a_policy_server_killed_mid_trial_is_recorded_and_restarted(tmp_path) -> None:
    config = compose(
        [*FAST, "campaign.episodes=4", "task.max_steps=200", f"campaign.dir={tmp_path}"]
    )
    trial_dir = tmp_path / config.trial_name
    killed: list[int] = []

    def kill_after_first_episode() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if any(trial_dir.glob(RECORD_GLOB)) and managed_servers():
                time.sleep(0.1)  # inside episode 1 by now
                for pid in managed_servers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_episode, daemon=True)
    killer.start()
    outcome = run_trial(config, trial_dir)
    killer.join(5)
    assert killed, "the test never saw the managed server"
    assert outcome.status == "done", outcome.reason
    metas = sorted((read_meta(p) for p in trial_dir.glob(RECORD_GLOB)), key=lambda m: m.episode)
    assert [m.episode for m in metas] == [0, 1, 2, 3]  # nothing lost, nothing twice
    faulted = [m for m in metas if m.faults]
    assert faulted and faulted[0].ended_by == "fault"
    assert faulted[0].faults[0].kind == "PolicyUnavailableError"
    assert metas[-1].ended_by == "max_steps" and not metas[-1].faults  # restarted server served
    assert metas[-1].metrics["steps"] == 200  # a capped episode is still scored
    assert not managed_servers()  # stopped at the end of the trial


def test_an_unreachable_remote_policy_fails_the_trial_cleanly(tmp_path) -> None:
    overrides = [*FAST, "policy=remote", "policy.name=ghost", "policy.home_site=kr-changwon",
                 "policy.address=127.0.0.1:9", f"campaign.dir={tmp_path}"]  # fmt: skip
    config = compose(overrides)
    start = time.monotonic()
    outcome = run_trial(config, tmp_path / config.trial_name)
    assert time.monotonic() - start < 30
    assert outcome.status == "failed"
    assert "127.0.0.1:9" in outcome.reason
    assert "127.0.0.1:9" in (tmp_path / config.trial_name / "FAILED").read_text()
    assert not list((tmp_path / config.trial_name).glob(RECORD_GLOB))


def test_records_of_another_config_are_not_mixed_in(tmp_path) -> None:
    config = compose([*FAST, "policy=scripted_kr_inprocess", "campaign.episodes=1",
                      f"campaign.dir={tmp_path}"])  # fmt: skip
    trial_dir = tmp_path / "shared"
    assert run_trial(config, trial_dir).status == "done"
    other = compose([*FAST, "policy=scripted_kr_inprocess", "campaign.episodes=1",
                     "task.max_steps=60", f"campaign.dir={tmp_path}"])  # fmt: skip
    outcome = run_trial(other, trial_dir)
    assert outcome.status == "failed"
    assert "another config" in outcome.reason
    assert len(list(trial_dir.glob(RECORD_GLOB))) == 1


def test_more_episodes_reuse_the_recorded_ones(tmp_path) -> None:
    base = [*FAST, "policy=scripted_kr_inprocess", f"campaign.dir={tmp_path}"]
    first = compose([*base, "campaign.episodes=2"])
    trial_dir = tmp_path / first.trial_name
    assert run_trial(first, trial_dir).episodes_run == 2
    again = run_trial(first, trial_dir)
    assert again.status == "skipped" and again.episodes_run == 0
    more = run_trial(compose([*base, "campaign.episodes=3"]), trial_dir)
    assert (more.status, more.episodes_run) == ("done", 1)
    assert sorted(read_meta(p).seed for p in trial_dir.glob(RECORD_GLOB)) == [0, 1, 2]
