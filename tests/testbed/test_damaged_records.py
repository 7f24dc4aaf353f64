"""Damaged episode records: named, set aside (never deleted), left out, and recorded again.

Each kind of damage seen in the field: a truncated file, a flipped byte (in the meta, or in an
array only a full read touches), an empty file, and files that are no record at all (a text
file named ``.npz``, an ``.npz`` holding pickled objects).
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from testbed.campaign.trial import run_trial
from testbed.cli import _register, app
from testbed.episodes.damaged_records import SetAside, set_aside_damaged
from testbed.episodes.records import (
    RECORD_GLOB,
    EpisodeMeta,
    EpisodeRecord,
    RecordError,
    read_meta,
    read_record,
    record_path,
    write_record,
)
from testbed.results.episode_table import load_episodes
from testbed.results.report import write_report

from .campaign.helpers import FAST, compose

_register()
runner = CliRunner()


def _flip(path: Path, member: str | None = None) -> None:
    """Flip one byte in the middle of ``member``'s compressed data (default: the largest)."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        info = archive.getinfo(member) if member else max(infos, key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 :][:4])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _pickle(path: Path) -> None:
    with path.open("wb") as handle:
        np.savez(handle, meta=np.array([{"format": "testbed.episode/1"}], dtype=object))


#: name -> (damage it in place, what the reader says).
DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "damaged"),
    "flipped-meta": (lambda p: _flip(p, "meta.npy"), "damaged"),
    "flipped-array": (_flip, "damaged"),
    "empty": (lambda p: p.write_bytes(b""), "damaged"),
    "text": (lambda p: p.write_text("notes about episode 3, not a record\n"), "not an episode"),
    "pickle": (_pickle, "not an episode"),
}
#: What a reader of the meta alone can see (the browser): every kind but a bad array.
META_VISIBLE = [name for name in DAMAGE if name != "flipped-array"]


def _record(episode: int, success: bool) -> EpisodeRecord:
    steps = 200
    rng = np.random.default_rng(episode)
    reason = "success" if success else f"lost: KR-CAP-300 at step {100 + episode}"
    meta = EpisodeMeta(
        env_id="Testbed/ConveyorSort-v0",
        env_kwargs={"site": "site-a"},
        site="site-a",
        bundle_hash="b" * 8,
        seed=episode,
        episode=episode,
        campaign="damaged",
        trial="p-at-a",
        policy="p",
        home_site="site-a",
        ended_by="terminated",
        steps=steps,
        metrics={"success_at_end": success, "outcome": reason, "parts_total": 3},
    )
    return EpisodeRecord(
        meta=meta,
        actions=rng.standard_normal((steps, 5)),
        observations={"x": rng.standard_normal((steps + 1, 8))},
        rewards=np.zeros(steps),
        terminations=np.zeros(steps, dtype=bool),
        truncations=np.zeros(steps, dtype=bool),
        latencies_ms=np.ones(steps),
    )


def _campaign(root: Path, damage: list[str], good: int = 2) -> dict[str, Path]:
    """``good`` intact records (the first one successful), then one per kind of ``damage``."""
    for episode in range(good):
        write_record(record_path(root / "p-at-a", episode), _record(episode, episode == 0))
    damaged = {}
    for episode, name in enumerate(damage, start=good):
        path = write_record(record_path(root / "p-at-a", episode), _record(episode, False))
        DAMAGE[name][0](path)
        damaged[name] = path
    return damaged


@pytest.mark.parametrize("name", list(DAMAGE))
def test_reading_names_the_file_and_what_is_wrong(tmp_path: Path, name: str) -> None:
    path = _campaign(tmp_path, [name], good=0)[name]
    for read in (read_record, lambda p: read_meta(p, verify=True)):
        with pytest.raises(RecordError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: {DAMAGE[name][1]}")
        assert "allow_pickle" not in message and "pickle.load" not in message
        assert caught.value.to_set_aside and isinstance(caught.value, ValueError)


def test_episodes_cli_sets_damaged_records_aside_and_lists_them(tmp_path: Path) -> None:
    damaged = _campaign(tmp_path, META_VISIBLE)
    contents = {path: path.read_bytes() for path in damaged.values()}
    for attempt in ("sets them aside", "still lists them"):
        result = runner.invoke(app, ["episodes", str(tmp_path)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (attempt, result.output)
        assert "2 of 2 episodes" in result.stdout
        assert "lost: KR-CAP-300 at step 101" in result.stdout  # the outcome column
        assert f"{len(damaged)} damaged records set aside" in result.stderr, attempt
        for name, path in damaged.items():
            assert f"{path}: {DAMAGE[name][1]}" in result.stderr, (attempt, name)
            assert f"now {path.name}.damaged" in result.stderr
        assert "Traceback" not in result.output and "allow_pickle" not in result.output
    for path, data in contents.items():  # moved aside, never deleted or changed
        assert not path.exists()
        assert path.with_name(path.name + ".damaged").read_bytes() == data
    listed = runner.invoke(app, ["episodes", str(tmp_path), "--json"])
    assert len(json.loads(listed.stdout)) == 2  # stdout stays JSON; the list goes to stderr


def test_report_leaves_damaged_records_out_and_lists_them(tmp_path: Path) -> None:
    campaign = tmp_path / "c"
    damaged = _campaign(campaign, list(DAMAGE))
    with pytest.raises(RecordError, match="p-at-a/episodes/ep-00002.npz"):
        load_episodes(campaign)  # a caller that gives no list gets the error, naming the file
    result = runner.invoke(app, ["report", str(campaign), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", "")
    assert f"{len(DAMAGE)} damaged records set aside" in output
    assert all(str(path) in output for path in damaged.values())
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"- {len(DAMAGE)} damaged records set aside" in text  # in the summary, up top
    assert all(f"{path}: {DAMAGE[name][1]}" in text for name, path in damaged.items())
    assert "from 2 episode records" in text and "| p | site-a | [0.50 [" in text  # 1/2 left
    again = write_report(campaign, tmp_path / "again")  # set aside earlier: still counted
    assert [a.record for a in again.damaged] == sorted(damaged.values())
    assert again.matrix.cell("p", "site-a").episodes == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(DAMAGE))
def test_replay_of_a_damaged_record_is_one_error_line(tmp_path: Path, name: str) -> None:
    path = _campaign(tmp_path, [name], good=0)[name]
    result = runner.invoke(app, ["replay", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {DAMAGE[name][1]}")
    assert result.stderr == result.output  # errors go to stderr
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert "allow_pickle" not in result.output
    assert path.exists()  # replay names the file, it does not move it


@pytest.fixture(scope="module")
def finished_trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """A finished trial of 5 short episodes (in-process scripted policy): overrides, folder."""
    root = tmp_path_factory.mktemp("trial")
    overrides = [*FAST, "task.max_steps=60", "policy=scripted_kr_inprocess",
                 "campaign.episodes=5", f"campaign.dir={root}"]  # fmt: skip
    config = compose(overrides)
    trial_dir = root / config.trial_name
    assert run_trial(config, trial_dir).status == "done"
    return overrides, trial_dir


@pytest.mark.parametrize("state", ["done", "interrupted", "set aside by a report"])
def test_a_rerun_records_damaged_episodes_again(
    finished_trial: tuple[list[str], Path], tmp_path: Path, state: str
) -> None:
    overrides, original = finished_trial
    trial_dir = tmp_path / original.name
    shutil.copytree(original, trial_dir)
    metas = {p.name: read_meta(p) for p in trial_dir.glob(RECORD_GLOB)}
    kinds = ["truncated", "flipped-array", "empty", "text"]  # episodes 1-4; 0 stays intact
    for episode, name in enumerate(kinds, start=1):
        DAMAGE[name][0](record_path(trial_dir, episode))
    if state == "interrupted":
        (trial_dir / "DONE").unlink()
    elif state == "set aside by a report":
        assert len(write_report(trial_dir, tmp_path / "report").damaged) == len(kinds)
    outcome = run_trial(compose(overrides), trial_dir)
    assert (outcome.status, outcome.episodes_run) == ("done", len(kinds)), outcome.reason
    for path in sorted(trial_dir.glob(RECORD_GLOB)):
        again = read_meta(path, verify=True)
        before = metas[path.name]
        assert (again.seed, again.metrics, again.outcome) == (
            before.seed,
            before.metrics,
            before.outcome,
        )
    assert len(list(trial_dir.glob("episodes/*.damaged"))) == len(kinds)  # kept for a look
    assert set_aside_damaged(trial_dir) == []  # nothing left to run
    assert run_trial(compose(overrides), trial_dir).status == "skipped"


def test_a_folder_that_cannot_be_changed_keeps_its_damaged_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set-aside is best effort: a record that cannot be moved is still named and left out."""
    damaged = _campaign(tmp_path, ["truncated"])

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("testbed.episodes.damaged_records.os.rename", refuse)
    aside: list[SetAside] = []
    df = load_episodes(tmp_path, damaged=aside)
    assert len(df) == 2
    assert [(a.record, a.moved_to) for a in aside] == [(damaged["truncated"], None)]
    assert "could not be moved aside: Permission denied" in aside[0].describe()
