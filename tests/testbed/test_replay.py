"""Replay: record, rebuild, re-apply actions, and check every step bit for bit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import testbed.cli.episodes  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.replay  # noqa: F401  would make it the whole app)
from envs.sites import list_sites
from testbed.cli import app
from testbed.episodes.records import EpisodeRecord, write_record
from testbed.episodes.replay import ReplayStep, load_episode, replay_episode, replay_file
from testbed.errors import ReplayDivergenceError, ReplayError
from tests.testbed.recording import cached_episode, record_episode

runner = CliRunner()
LINK_LATENCY = {"jp-nagoya": 0, "kr-changwon": 0, "us-austin": 2}  # site.yaml policy_link


def _tampered(record: EpisodeRecord, step: int) -> EpisodeRecord:
    actions = record.actions.copy()
    actions[step, 0] = 0.9 if actions[step, 0] < 0.4 else -0.9
    return dataclasses.replace(record, actions=actions)


@pytest.mark.parametrize("site", list_sites())
def test_replay_is_bit_identical_at_every_site(site: str, tmp_path: Path) -> None:
    record = cached_episode(site)
    path = write_record(tmp_path / "ep-00000.npz", record)
    report = replay_file(path)
    assert report.verified
    assert (report.start_step, report.end_step) == (0, record.steps)
    assert report.steps_replayed == record.steps == 200


@pytest.mark.parametrize("site", ["kr-changwon", "us-austin"])
def test_tampered_action_fails_verification_at_the_step_it_takes_effect(site: str) -> None:
    record = cached_episode(site)
    with pytest.raises(ReplayDivergenceError) as caught:
        replay_episode(_tampered(record, 60))
    error = caught.value
    # The policy link delays actions: us-austin's robot receives action 60 at step 62.
    assert error.step == 60 + LINK_LATENCY[site]
    assert error.observation == error.step + 1
    assert error.field.startswith("obs/")
    assert error.recorded != error.replayed
    assert f"step {error.step}" in str(error)


def test_divergence_names_field_element_and_both_values() -> None:
    record = cached_episode("kr-changwon")
    observations = {k: v.copy() for k, v in record.observations.items()}
    observations["part_pos"][37, 2] += 1e-6
    with pytest.raises(ReplayDivergenceError) as caught:
        replay_episode(dataclasses.replace(record, observations=observations))
    error = caught.value
    assert (error.step, error.observation, error.field, error.index) == (
        36,
        37,
        "obs/part_pos",
        (2,),
    )
    assert error.recorded == pytest.approx(error.replayed + 1e-6, abs=1e-7)
    assert "obs/part_pos[2]" in str(error)


@pytest.mark.parametrize("site", list_sites())
def test_from_step_restores_the_nearest_snapshot_and_reproduces_the_rest(site: str) -> None:
    record = cached_episode(site)
    seen: list[int] = []
    report = replay_episode(record, from_step=130, observers=(lambda s: seen.append(s.index),))
    assert report.verified
    assert report.start_step == 100  # snapshots every 50 steps
    assert report.steps_replayed == record.steps - 100
    assert seen == list(range(130, record.steps + 1))


def test_from_step_without_snapshots_starts_at_reset() -> None:
    record = record_episode("kr-changwon", 2, max_steps=60, snapshot_every=0)
    assert not record.snapshots
    report = replay_episode(record, from_step=40)
    assert (report.start_step, report.from_step, report.verified) == (0, 40, True)


def test_observers_get_rewards_and_events_as_recorded() -> None:
    record = cached_episode("us-austin")
    steps: list[ReplayStep] = []
    replay_episode(record, verify=False, observers=(steps.append,))
    assert [s.index for s in steps] == list(range(record.steps + 1))
    assert [s.reward for s in steps[1:]] == record.rewards.tolist()
    assert steps[-1].total_reward == pytest.approx(record.rewards.sum())
    replayed = [(s.index - 1, e) for s in steps for e in s.events]
    assert tuple(replayed) == record.meta.events


def test_replay_refuses_a_changed_site_bundle() -> None:
    record = cached_episode("kr-changwon")
    meta = dataclasses.replace(record.meta, bundle_hash="0" * 64)
    with pytest.raises(ReplayError, match="has changed since the episode was recorded"):
        replay_episode(dataclasses.replace(record, meta=meta))


def test_from_step_outside_the_episode_is_refused() -> None:
    with pytest.raises(ReplayError, match="outside 0..200"):
        replay_episode(cached_episode("kr-changwon"), from_step=201)


def test_load_episode_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "ep-00000.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ReplayError, match=str(bad)):
        load_episode(bad)
    with pytest.raises(ReplayError, match="no such episode record"):
        load_episode(tmp_path / "missing.npz")


def test_cli_verifies_and_reports_json(tmp_path: Path) -> None:
    path = write_record(tmp_path / "ep-00000.npz", cached_episode("us-austin"))
    result = runner.invoke(app, ["replay", str(path), "--from-step", "75", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    assert data["status"] == "verified"
    assert (data["start_step"], data["from_step"], data["end_step"]) == (50, 75, 200)


def test_cli_exits_non_zero_on_divergence_and_says_where(tmp_path: Path) -> None:
    path = write_record(tmp_path / "ep-00000.npz", _tampered(cached_episode("kr-changwon"), 90))
    result = runner.invoke(app, ["replay", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {path}: replay diverged at step 90 (observation 91)")
    assert "recorded" in result.output and "replayed" in result.output
    unverified = runner.invoke(app, ["replay", str(path), "--no-verify"])
    assert unverified.exit_code == 0, unverified.output
    assert "not verified" in unverified.output


def test_cli_refuses_a_changed_bundle_and_a_missing_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = cached_episode("kr-changwon")
    changed = dataclasses.replace(record.meta, bundle_hash="f" * 64)
    path = write_record(tmp_path / "ep-00000.npz", dataclasses.replace(record, meta=changed))
    result = runner.invoke(app, ["replay", str(path)])
    assert result.exit_code == 2
    assert "bundle hash" in result.output and "f" * 64 in result.output
    monkeypatch.delenv("DISPLAY", raising=False)
    good = write_record(tmp_path / "ep-00001.npz", record)
    result = runner.invoke(app, ["replay", str(good), "--gui"])
    assert result.exit_code == 2
    assert "--gui needs a display: DISPLAY is not set" in result.output


def test_replayed_observations_match_the_record_arrays() -> None:
    """Belt and braces: compare whole arrays, not only what the checker compares."""
    record = cached_episode("jp-nagoya")
    rows: list[dict[str, np.ndarray]] = []

    def keep(step: ReplayStep) -> None:
        rows.append(dict(step.env._last_observation))

    replay_episode(record, verify=False, observers=(keep,))
    for name, recorded in record.observations.items():
        assert np.stack([row[name] for row in rows]).tobytes() == recorded.tobytes(), name


@pytest.mark.slow
def test_a_full_episode_replays_to_its_end_from_reset_and_from_the_last_snapshot() -> None:
    record = record_episode("us-austin", 6, max_steps=None, snapshot_every=100)
    assert record.meta.ended_by in ("terminated", "truncated")
    assert record.terminations[-1] or record.truncations[-1]
    assert replay_episode(record).end_step == record.steps
    last = max(record.snapshots)
    assert replay_episode(record, from_step=record.steps).start_step == last
