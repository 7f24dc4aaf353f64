"""``testbed episodes``: list a campaign's records, filter them, print replay commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.episodes  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.replay  # noqa: F401  would make it the whole app)
from testbed.cli import app
from testbed.episodes.browse import EpisodeFilter, find_episodes, select_episodes
from testbed.episodes.records import EpisodeRecord, Fault
from tests.testbed.recording import record_episode, write_episode

runner = CliRunner()


def _variant(record: EpisodeRecord, **changes: object) -> EpisodeRecord:
    return dataclasses.replace(record, meta=dataclasses.replace(record.meta, **changes))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two trials, four episodes: a success, a truncation with violations, a fault, a success."""
    root = tmp_path_factory.mktemp("campaign")
    kr = record_episode("kr-changwon", 1, max_steps=15, snapshot_every=0)
    us = record_episode("us-austin", 2, max_steps=15, snapshot_every=0, home_site="kr-changwon")
    success = {"success_at_end": True, "violations_tcp_speed": 0}
    kr_trial = {"trial": "kr-home", "policy": "scripted_kr", "home_site": "kr-changwon"}
    us_trial = {"trial": "kr-at-us", "policy": "scripted_kr", "home_site": "kr-changwon"}
    episodes = [
        _variant(kr, **kr_trial, episode=0, ended_by="terminated", metrics=success, events=()),
        _variant(
            kr,
            **kr_trial,
            episode=1,
            ended_by="truncated",
            metrics={"success_at_end": False, "violations_tcp_speed": 2},
            events=((3, "violation:tcp_speed"), (4, "violation:tcp_speed"), (5, "grasp:x")),
        ),
        _variant(
            us,
            **us_trial,
            episode=0,
            ended_by="fault",
            faults=(Fault(7, "deadline", "no answer in 50 ms"),),
            metrics={},
        ),
        _variant(us, **us_trial, episode=1, ended_by="terminated", metrics=success, events=()),
    ]
    for record in episodes:
        write_episode(root, record)
    (root / "kr-home" / "episodes.parquet").write_bytes(b"ignored: not a record")
    return root


def _json(campaign: Path, *options: str) -> list[dict]:
    result = runner.invoke(app, ["episodes", str(campaign), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("[") :])


def test_lists_every_readable_episode_with_a_replay_command(campaign: Path) -> None:
    result = runner.invoke(app, ["episodes", str(campaign)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "4 of 4 episodes" in result.stdout
    for trial, episode in (("kr-home", 0), ("kr-home", 1), ("kr-at-us", 0), ("kr-at-us", 1)):
        path = campaign / trial / "episodes" / f"ep-{episode:05d}.npz"
        assert f"testbed replay {path}" in result.stdout
    assert "policy fault: deadline" in result.stdout  # the outcome column gives the reason
    assert result.stderr == ""  # nothing damaged, nothing skipped


def test_json_summarises_outcome_faults_and_violations(campaign: Path) -> None:
    rows = {(r["trial"], r["episode"]): r for r in _json(campaign)}
    assert rows[("kr-home", 0)]["outcome"] == "success"
    assert rows[("kr-home", 1)]["outcome"] == "time limit"  # no part counts in its summary
    assert not rows[("kr-home", 1)]["success"]
    assert rows[("kr-home", 1)]["violations"] == {"tcp_speed": 2}
    assert rows[("kr-at-us", 0)]["faults"] == ["deadline"]
    assert rows[("kr-at-us", 0)]["outcome"] == "policy fault: deadline"
    assert rows[("kr-at-us", 1)]["home_site"] == "kr-changwon"
    assert rows[("kr-at-us", 1)]["site"] == "us-austin"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--failed"], {("kr-home", 1), ("kr-at-us", 0)}),
        (["--site", "us-austin"], {("kr-at-us", 0), ("kr-at-us", 1)}),
        (["--violation", "tcp_speed"], {("kr-home", 1)}),
        (["--violation", "keep_out"], set()),
        (["--fault"], {("kr-at-us", 0)}),
        (["--failed", "--site", "kr-changwon"], {("kr-home", 1)}),
        (["--policy", "scripted_kr", "--site", "kr-changwon"], {("kr-home", 0), ("kr-home", 1)}),
        (["--policy", "scripted-sort@kr-changwon@1.0.0", "--fault"], {("kr-at-us", 0)}),
        (["--failed", "--site", "us-austin", "--violation", "tcp_speed"], set()),
    ],
)
def test_filters(campaign: Path, options: list[str], expected: set[tuple[str, int]]) -> None:
    assert {(r["trial"], r["episode"]) for r in _json(campaign, *options)} == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--site", "us-austn"], "--site 'us-austn' matches no episode in {campaign}; expected one "
         "of kr-changwon, us-austin; did you mean 'us-austin'?"),
        (["--policy", "someone-else"], "--policy 'someone-else' matches no episode in {campaign}; "
         "expected one of scripted_kr (or a policy id@version: scripted-sort@kr-changwon@1.0.0)"),
    ],
)  # fmt: skip
def test_a_filter_that_matches_no_episode_is_a_usage_error(
    campaign: Path, options: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["episodes", str(campaign), *options])
    assert result.exit_code == 2
    assert result.stderr == f"error: {expected.format(campaign=campaign)}\n"
    assert result.stdout == ""


def test_browsing_reads_only_the_meta(campaign: Path) -> None:
    entries, problems = find_episodes(campaign)
    assert len(entries) == 4 and not problems
    failed = select_episodes(entries, EpisodeFilter(failed=True))
    assert [e.replay_command().split()[:2] for e in failed] == [["testbed", "replay"]] * 2


def test_missing_campaign_folder_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["episodes", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such campaign folder" in result.output
