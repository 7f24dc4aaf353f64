"""A full disk or an unwritable output folder: a clear error naming the file, records intact.

The tests run as any user (root ignores permission bits), so "full" and "unwritable" are made
two ways: by making the OS calls fail with the errno the kernel would give (ENOSPC from fsync,
EACCES from creating the temporary file), and for real, with paths the OS cannot write (a
folder where the episode table should be, a file where the campaign folder should be).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.campaign.trial import TrialOutcome, run_trial
from testbed.episodes.records import RECORD_GLOB, read_record

from .helpers import FAST, compose, run_cli

BASE = [*FAST, "policy=scripted_kr_inprocess", "task.max_steps=60"]


def trial(tmp_path: Path, episodes: int) -> tuple[Any, Path]:
    config = compose([*BASE, f"campaign.episodes={episodes}", f"campaign.dir={tmp_path}"])
    return config, tmp_path / config.trial_name


def snapshot(trial_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(trial_dir.glob(RECORD_GLOB))}


def inside(fd_or_dir: int | str | None, folder: Path) -> bool:
    target = os.readlink(f"/proc/self/fd/{fd_or_dir}") if isinstance(fd_or_dir, int) else fd_or_dir
    return str(target or "").startswith(str(folder))


def assert_clear_failure(outcome: TrialOutcome, reason: str, path: Path) -> None:
    assert outcome.status == "failed"
    assert f"cannot write {path}: {reason}" in outcome.reason, outcome.reason
    assert "the FAILED marker could not be written either" in outcome.reason


def test_a_full_disk_fails_the_trial_clearly_and_keeps_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config, trial_dir = trial(tmp_path, 2)
    assert run_trial(config, trial_dir).status == "done"
    before = snapshot(trial_dir)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the disk fills up after one more record
        if inside(fd, trial_dir) and len(list(trial_dir.glob(RECORD_GLOB))) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    config, _ = trial(tmp_path, 5)
    outcome = run_trial(config, trial_dir)
    assert_clear_failure(outcome, "No space left on device", trial_dir / "episodes/ep-00003.npz")
    assert any(r.levelno == logging.ERROR and "No space left" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    after = snapshot(trial_dir)
    assert {k: after[k] for k in before} == before  # the earlier records, byte for byte
    assert sorted(after) == ["ep-00000.npz", "ep-00001.npz", "ep-00002.npz"]
    assert read_record(trial_dir / "episodes/ep-00002.npz").steps == 60  # the one before: whole
    assert not list(trial_dir.rglob("*.tmp"))

    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the rerun finishes the trial
    assert run_trial(config, trial_dir).status == "done"
    final = snapshot(trial_dir)
    assert len(final) == 5 and {k: final[k] for k in after} == after


def test_an_unwritable_folder_fails_the_trial_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, trial_dir = trial(tmp_path, 1)
    assert run_trial(config, trial_dir).status == "done"
    before = snapshot(trial_dir)
    real_mkstemp: Callable[..., Any] = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> Any:
        if inside(kwargs.get("dir"), trial_dir):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs["dir"]))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    config, _ = trial(tmp_path, 3)
    outcome = run_trial(config, trial_dir)  # returns: nothing escapes to the launcher
    assert_clear_failure(outcome, "Permission denied", trial_dir / "trial.json")
    assert snapshot(trial_dir) == before


def test_a_real_os_error_at_the_end_of_a_trial_is_marked_and_keeps_the_records(
    tmp_path: Path,
) -> None:
    config, trial_dir = trial(tmp_path, 2)
    (trial_dir / "episodes.parquet").mkdir(parents=True)  # nothing can replace a folder
    outcome = run_trial(config, trial_dir)
    message = f"cannot write {trial_dir / 'episodes.parquet'}: Is a directory"
    assert outcome.status == "failed" and message in outcome.reason
    assert message in (trial_dir / "FAILED").read_text()  # the marker says why
    assert [read_record(p).steps for p in sorted(trial_dir.glob(RECORD_GLOB))] == [60, 60]
    assert not (trial_dir / "DONE").exists() and not list(trial_dir.rglob("*.tmp"))


def test_a_campaign_folder_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the campaign folder should go")
    result = run_cli(["run", *BASE, "campaign.episodes=1", f"campaign.dir={blocker / 'c'}"],
                     tmp_path, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert "Not a directory" in result.stderr and str(blocker) in result.stderr
    assert blocker.read_text().startswith("a file")
