"""``testbed report``: a synthetic campaign folder of real episode records -> report files."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from testbed.cli import _register, app
from testbed.episodes.records import EpisodeMeta, EpisodeRecord, Fault, record_path, write_record
from testbed.errors import TestbedError
from testbed.results.episode_table import load_episodes
from testbed.results.evaluator import applicable_kpis
from testbed.results.kpis import KPIS
from testbed.results.report import WrittenReport, write_report
from testbed.results.statistics import wilson_interval

SEEDS = list(range(10))
VERSIONS = {"numpy": "2.0", "pybullet": "3.2.7"}
# (trial, policy, home, site, successes among seeds 0..9, marker): success = seed < successes.
TRIALS = [
    ("pa-at-a", "pa", "site-a", "site-a", 9, "DONE"),
    ("pa-at-b", "pa", "site-a", "site-b", 3, "DONE"),
    ("pb-at-b", "pb", "site-b", "site-b", 8, "DONE"),
    ("pb-at-a", "pb", "site-b", "site-a", 4, "FAILED"),
    ("rnd-at-a", "random", "site-a", "site-a", 1, "DONE"),
    ("rnd-at-b", "random", "site-a", "site-b", 0, None),
]
FAULT_MESSAGE = "policy server at 127.0.0.1:1 went away"

_register()


def _metrics(success: bool, seed: int) -> dict[str, float | int | bool]:
    sorted_parts = 4 if success else 1
    violations = 2 if seed == 0 else 0
    return {
        "success_once": success,
        "success_at_end": success,
        "parts_total": 4,
        "parts_sorted": sorted_parts,
        "cycle_time_s": 5.0 + seed,
        "throughput_parts_per_h": 3600.0 * sorted_parts / 40.0,
        "energy_j": 100.0 * sorted_parts,
        "energy_per_part_j": 100.0 + seed,
        "violations_tcp_speed": violations,
        "violations_contact_force": 0,
        "violations_keep_out": 0,
        "violations_per_1000_steps": 1000.0 * violations / 50,
        "steps": 50,
        "sim_time_s": 40.0,
    }


def _record(
    trial: str, policy: str, home: str, site: str, seed: int, success: bool
) -> EpisodeRecord:
    faults: tuple[Fault, ...] = ()
    events: tuple[tuple[int, str], ...] = ()
    ended_by, metrics = "terminated", _metrics(success, seed)
    if trial == "pb-at-a" and seed == 9:  # ended on a fault: no metrics
        faults = (Fault(3, "deadline", "late"), Fault(7, "PolicyUnavailableError", FAULT_MESSAGE))
        ended_by, metrics = "fault", {}
    elif trial == "pa-at-b" and seed == 5:  # missed deadlines, but finished
        faults = (Fault(1, "deadline", "late"), Fault(2, "deadline", "late"))
    elif trial == "rnd-at-b" and seed == 9:  # cut at the runner's step limit: events only
        ended_by, metrics = "max_steps", {}
        events = ((0, "violation:tcp_speed"), (4, "grasp:P1"), (7, "violation:keep_out"))
    meta = EpisodeMeta(
        env_id="Testbed/ConveyorSort-v0",
        env_kwargs={"site": site},
        site=site,
        bundle_hash="b" * 8,
        seed=seed,
        episode=seed,
        campaign="synthetic",
        trial=trial,
        policy=policy,
        policy_id=f"{policy}@1",
        home_site=home,
        ended_by=ended_by,
        steps=50,
        metrics=metrics,
        faults=faults,
        events=events,
        compute=_compute(policy, seed),
        versions=VERSIONS,
    )
    steps = 3
    return EpisodeRecord(
        meta=meta,
        actions=np.zeros((steps, 2)),
        observations={"x": np.zeros((steps + 1, 1))},
        rewards=np.zeros(steps),
        terminations=np.array([False, False, True]),
        truncations=np.zeros(steps, dtype=bool),
        latencies_ms=np.array([1.0, 2.0, 3.0 + seed]),
    )


def _compute(policy: str, seed: int) -> dict[str, Any]:
    """50 measured actions at 2 mJ each (seed 9: 3 mJ); "random" is an old server: unknown."""
    if policy == "random":
        return {"joules": None, "calls": 50, "measured_calls": 0, "actions": 0,
                "source": "unknown", "price_per_kwh": None}  # fmt: skip
    joules = 50 * (0.003 if seed == 9 else 0.002)
    return {"joules": joules, "cpu_seconds": joules / 12.0, "calls": 50, "measured_calls": 50,
            "actions": 50, "source": "cpu-estimate", "watts_per_core": 12.0,
            "price_per_kwh": None, "currency": "EUR"}  # fmt: skip


def _trial_json(trial: str, policy: str, home: str, site: str, seeds: list[int]) -> dict:
    return {
        "campaign": "synthetic",
        "trial": trial,
        "policy": {"name": policy, "kind": "scripted", "home_site": home, "seed": None},
        "site": site,
        "seeds": seeds,
        "episodes": len(seeds),
        "config_hash": "c0ffee" * 4,
        "versions": VERSIONS,
    }


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("campaign")
    planned = [t[0] for t in TRIALS] + ["pc-at-a"]
    (root / "campaign.json").write_text(
        json.dumps(
            {
                "name": "synthetic",
                "overrides": ["site=site-a,site-b", "policy=pa,pb,random"],
                "config": {"episodes": 10, "task": "conveyor_sort"},
                "trials": planned,
                "started_at": "2025-01-01T00:00:00Z",
            }
        )
    )
    for trial, policy, home, site, successes, marker in TRIALS:
        folder = root / trial
        seeds = SEEDS
        for seed in seeds:
            record = _record(trial, policy, home, site, seed, seed < successes)
            write_record(record_path(folder, seed), record)
        (folder / "trial.json").write_text(
            json.dumps(_trial_json(trial, policy, home, site, seeds))
        )
        if marker == "DONE":
            (folder / "DONE").write_text("{}")
        elif marker == "FAILED":
            (folder / "FAILED").write_text(json.dumps({"reason": "worker killed (OOM)"}))
    return root


@pytest.fixture(scope="module")
def written(campaign: Path, tmp_path_factory: pytest.TempPathFactory) -> WrittenReport:
    out = tmp_path_factory.mktemp("report")
    return write_report(campaign, out, baseline="random")


def test_episode_table_has_one_row_per_record(campaign: Path) -> None:
    df = load_episodes(campaign)
    assert len(df) == len(TRIALS) * len(SEEDS)
    faulted = df[df["ended_by"] == "fault"].iloc[0]
    assert (faulted["trial"], faulted["end_fault"]) == ("pb-at-a", "PolicyUnavailableError")
    assert not faulted["success"]
    assert faulted["deadline_misses"] == 1
    assert df.loc[df["trial"] == "pa-at-b", "deadline_misses"].sum() == 2


def test_report_writes_every_file(written: WrittenReport) -> None:
    paths = written
    assert str(written) == str(written.html) and Path(written) == written.html
    for path in (paths.markdown, paths.html, paths.episodes_csv, paths.episodes_parquet):
        assert path.stat().st_size > 0, path
    assert [p.name for p in paths.figures] == [
        "success_matrix.png",
        "retention_matrix.png",
        "kpis.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths.figures)
    folder = written.html.parent
    for name in ("predictivity.csv", "leaderboard.csv", "predictivity.png"):
        assert (folder / name).stat().st_size > 0, name


def test_csv_and_parquet_have_one_row_per_episode(written: WrittenReport) -> None:
    paths = written
    csv = pd.read_csv(paths.episodes_csv)
    parquet = pd.read_parquet(paths.episodes_parquet)
    assert len(csv) == len(parquet) == len(TRIALS) * len(SEEDS)
    assert set(csv["record"]) == set(parquet["record"])


def test_html_is_self_contained(written: WrittenReport) -> None:
    """Inline style and script, figures as data URIs; links only to anchors of the page."""
    text = written.html.read_text()
    assert "<script>" in text and "<script " not in text  # inline, no src
    assert "<link" not in text and "http://" not in text and "https://" not in text
    assert not re.search(r'src="(?!data:)', text)
    assert not re.search(r'href="(?!#)', text)
    assert text.count('src="data:image/png;base64,') == 4  # with the predictivity heatmap
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


def test_matrix_numbers(written: WrittenReport) -> None:
    paths, report = written, written.matrix
    matrix = pd.read_csv(paths.matrix_csv).set_index(["policy", "site"])
    away = matrix.loc[("pa", "site-b")]
    assert (away["episodes"], away["successes"]) == (10, 3)
    low, high = wilson_interval(3, 10)
    assert away["success_low"] == pytest.approx(low)
    assert away["success_high"] == pytest.approx(high)
    assert away["retention"] == pytest.approx(0.3 / 0.9)
    assert away["retention_low"] <= away["retention"] <= away["retention_high"]
    assert away["deadline_misses"] == 2
    # pb at site-a: 4 successes; the fault episode (seed 9) is a failure.
    assert matrix.loc[("pb", "site-a"), "success"] == pytest.approx(0.4)
    assert matrix.loc[("pb", "site-a"), "faulted_episodes"] == 1
    # Normalised against random (0.1 at site-a) and the native policy pa (0.9 at site-a).
    assert matrix.loc[("pb", "site-a"), "normalised"] == pytest.approx((0.4 - 0.1) / (0.9 - 0.1))
    # Cycle time over successes only: pa at home succeeded for seeds 0..8 -> 5..13 s.
    home = report.cell("pa", "site-a")
    assert home.kpi("cycle_time_median_s") == pytest.approx(9.0)
    assert home.kpi("cycle_time_p90_s") == pytest.approx(np.quantile(np.arange(5.0, 14.0), 0.9))
    # Seed 0 has 2 violations in 50 steps: pooled 2 / 500 steps, 1 of 10 episodes.
    assert home.kpi("violations_per_1000_steps") == pytest.approx(4.0)
    assert home.kpi("violation_share") == pytest.approx(0.1)
    assert home.kpi("latency_p99_ms") == pytest.approx(np.percentile([1.0, 2.0, 12.0], 99))
    # Without a metrics summary the violation events count: seed 0 (2) + seed 9 (2 events).
    cut = report.cell("random", "site-b")
    assert cut.kpi("violations_per_1000_steps") == pytest.approx(1000 * 4 / 500)
    assert cut.kpi("violation_share") == pytest.approx(0.2)
    assert math.isnan(cut.kpi("cycle_time_median_s"))
    assert report.absent_kpis == ()


def test_kpi_table_columns_come_from_the_registry(written: WrittenReport) -> None:
    header = ["policy", "site", "n", *(KPIS[name].column for name in written.matrix.kpi_names)]
    assert header[3:] == [
        "cycle s median", "cycle s p90", "parts/h", "energy J/part", "viol./1k steps",
        "episodes w/ viol.", "latency ms p50", "latency ms p99", "deadline misses",
        "invalid actions", "faulted episodes", "compute J/action", "J/good part",
        "compute share", "successes/kJ", "cost/1k episodes",
    ]  # fmt: skip
    markdown = written.markdown.read_text()
    assert "| " + " | ".join(header) + " |" in markdown
    row = "| pa | [site-a *](#cell-pa-site-a) | 10 | 9.00 | 12.20 | 333.0 | 104.5 [102.7, 106.3] |"
    assert row + " 4.00 | 10% |" in markdown
    assert "n/a in every cell" not in markdown


def test_energy_section_shows_sources_and_unknowns(written: WrittenReport) -> None:
    markdown = written.markdown.read_text()
    section = markdown.split("## Energy", 1)[1].split("\n## ", 1)[0]
    assert "no energy price configured" in section
    # pa at home: 9 successes x 4 parts + 1 x 1 = 37 parts; robot 9 x 400 + 100 J; compute
    # 9 x 0.1 + 0.15 J.
    robot, compute = 3700.0, 1.05
    per_part = (robot + compute) / 37
    share = compute / (robot + compute)
    pa = "| pa | [site-a](#cell-pa-site-a) | cpu-estimate (12 W per core) | 0.0021 [0.002, 0.0023] "
    per_kj = 9 / ((robot + compute) / 1000)
    pa += f"| {per_part:.1f} | {1 - share:.2%} / {share:.2%} | {per_kj:.3g} | n/a |"
    assert pa in section
    # The old server's compute is unknown: n/a everywhere, never 0.
    unknown = "| random | [site-a](#cell-random-site-a) | unknown | n/a | n/a | n/a | n/a | n/a |"
    assert unknown in section
    assert written.matrix.absent_kpis == ()


def test_testbed_columns_of_the_kpis_are_in_the_episode_table(campaign: Path) -> None:
    episodes = load_episodes(campaign)
    applicable = applicable_kpis(episodes["env_id"])
    assert "insertion_time_median_s" in KPIS and "insertion_time_median_s" not in applicable
    for kpi in (KPIS[name] for name in applicable):
        assert kpi.reads(episodes.columns), f"{kpi.name}: no column {kpi.summary_key!r}"


def test_a_kpi_no_record_holds_is_n_a_and_named(tmp_path: Path) -> None:
    """Records of an older env without cycle_time_s: n/a, and the report says why."""
    root = tmp_path / "c"
    for seed in range(3):
        record = _record("old", "p", "site-a", "site-a", seed, True)
        metrics = {k: v for k, v in record.meta.metrics.items() if k != "cycle_time_s"}
        meta = dataclasses.replace(record.meta, metrics=metrics)
        write_record(record_path(root / "old", seed), dataclasses.replace(record, meta=meta))
    written = write_report(root, tmp_path / "out")
    assert set(written.matrix.absent_kpis) == {"cycle_time_median_s", "cycle_time_p90_s"}
    markdown = written.markdown.read_text()
    assert "| p | [site-a *](#cell-p-site-a) | 3 | n/a | n/a | 360.0 |" in markdown
    assert (
        "n/a in every cell: no episode record holds cycle_time_s (cycle s median, cycle s p90)"
        in markdown
    )


def test_rows_are_grouped_by_home_site(written: WrittenReport) -> None:
    report = written.matrix
    assert report.policies == ("pa", "random", "pb")
    assert report.sites == ("site-a", "site-b")


def test_report_states_what_failed(written: WrittenReport) -> None:
    for text in (written.markdown.read_text(), written.html.read_text()):
        assert "pb-at-a" in text and "worker killed (OOM)" in text
        assert "rnd-at-b" in text and "unfinished" in text
        assert "pc-at-a" in text and "not started" in text
        assert "PolicyUnavailableError" in text and FAULT_MESSAGE in text
        assert "site=site-a,site-b" in text
        assert "pybullet" in text and "3.2.7" in text


def test_cli_prints_matrix_and_paths(campaign: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(campaign), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "30%" in result.output
    assert str(tmp_path / "report.html") in result.output.replace("\n", "")


def test_cli_names_a_folder_without_records(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2  # a usage error: the folder is not a campaign
    assert str(tmp_path) in result.output.replace("\n", "")
    assert "no episode records" in result.output


def test_load_episodes_raises_without_records(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="no episode records"):
        load_episodes(tmp_path)


def test_unreadable_record_is_reported_not_fatal(campaign: Path, tmp_path: Path) -> None:
    bad = tmp_path / "c" / "broken" / "episodes" / "ep-00000.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a zip")
    good = campaign / "pa-at-a" / "episodes" / "ep-00000.npz"
    (tmp_path / "c" / "t" / "episodes").mkdir(parents=True)
    (tmp_path / "c" / "t" / "episodes" / "ep-00000.npz").write_bytes(good.read_bytes())
    with pytest.raises(ValueError, match="broken"):
        load_episodes(tmp_path / "c")
    skipped: list[str] = []
    assert len(load_episodes(tmp_path / "c", skipped)) == 1
    assert len(skipped) == 1 and "broken" in skipped[0]


@pytest.mark.parametrize("planned", [None, 5], ids=["no-campaign-json", "trial-count"])
def test_campaign_json_optional_or_a_count(
    campaign: Path, tmp_path: Path, planned: int | None
) -> None:
    root = tmp_path / "c"
    for trial in ("pa-at-a", "pa-at-b"):
        shutil.copytree(campaign / trial, root / trial)
    if planned is not None:
        (root / "campaign.json").write_text(json.dumps({"name": "counted", "trials": planned}))
    text = write_report(root).markdown.read_text()
    assert "Trials: 2 (2 done" in text if planned is None else "Trials: 5 (2 done" in text
    if planned is None:
        assert "campaign.json not found" in text
    else:
        assert "3 planned trial(s) have no folder" in text


def _sorting_campaign(root: Path, outcomes: dict[tuple[str, str], list[str]]) -> Path:
    """Finished trials, no faults: (policy, site) -> the env's outcome of each episode."""
    for (policy, site), reasons in outcomes.items():
        trial = f"{policy}-at-{site}"
        for seed, reason in enumerate(reasons):
            record = _record(trial, policy, "site-a", site, seed, reason == "success")
            metrics = {**record.meta.metrics, "outcome": reason}
            if reason == "":  # an older env: no outcome key, a reason from the counts
                metrics = {**record.meta.metrics, "parts_lost": 2}
            meta = dataclasses.replace(record.meta, metrics=metrics)
            write_record(record_path(root / trial, seed), dataclasses.replace(record, meta=meta))
        seeds = list(range(len(reasons)))
        (root / trial / "trial.json").write_text(
            json.dumps(_trial_json(trial, policy, "site-a", site, seeds))
        )
        (root / trial / "DONE").write_text("{}")
    return root


def test_failed_cells_are_broken_down_by_reason_never_nothing_failed(tmp_path: Path) -> None:
    """Two policies sort 0/5 with no fault anywhere: the report says why, cell by cell."""
    lost = [f"lost: KR-CAP-300 at step {600 + s}" for s in range(3)]
    campaign = _sorting_campaign(
        tmp_path / "c",
        {
            ("good", "site-a"): ["success"] * 5,
            ("p1", "site-a"): [*lost, "time limit with 2/3 parts sorted", ""],
            ("p2", "site-a"): ["wrong bin: KR-CAP-300 in bin2 at step 540"] * 5,
        },
    )
    written = write_report(campaign, tmp_path / "out")
    cells = {c.policy: c for c in written.matrix.cells.values()}
    assert [(f.category, f.episodes) for f in cells["p1"].failures] == [
        ("lost", 4),
        ("time limit", 1),
    ]
    assert cells["p1"].failures[0].example == lost[0]
    assert cells["good"].failures == ()
    for cell in cells.values():
        assert sum(f.episodes for f in cell.failures) == cell.episodes - cell.successes
    for text in (written.markdown.read_text(), written.html.read_text()):
        assert "Nothing failed" not in text and "nothing failed" not in text
        assert "Why episodes failed, by cell" in text
        assert "KR-CAP-300 at step 600" in text and "time limit with 2/3 parts sorted" in text
        assert "wrong bin: KR-CAP-300 in bin2 at step 540" in text
    markdown = written.markdown.read_text()
    assert (
        "| p1 | site-a * | [5/5](#cell-p1-site-a) | lost | 4 | lost: KR-CAP-300 at step 600 |"
        in markdown
    )
    row = "| p1 | site-a * | [5/5](#cell-p1-site-a) | time limit | 1 |"
    assert row + " time limit with 2/3 parts sorted |" in markdown
    assert "| p2 | site-a * | [5/5](#cell-p2-site-a) | wrong bin | 5 |" in markdown
    csv = pd.read_csv(written.episodes_csv)
    assert csv.loc[csv["policy"] == "p1", "outcome"].tolist()[:3] == lost
    assert csv.loc[csv["policy"] == "p1", "outcome"].tolist()[4] == "lost: 2 of 4 parts"
    assert set(csv.loc[csv["policy"] == "good", "outcome"]) == {"success"}
    assert "failures" in pd.read_csv(written.matrix_csv).columns


def test_nothing_failed_only_when_every_cell_succeeded(tmp_path: Path) -> None:
    campaign = _sorting_campaign(tmp_path / "c", {("good", "site-a"): ["success"] * 3})
    text = write_report(campaign, tmp_path / "out").markdown.read_text()
    assert "Nothing failed: every trial finished, every episode succeeded" in text


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _interrupt_writing(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make the write of the file named ``target`` die after half its bytes.

    Wherever those bytes go: straight to ``target`` (matplotlib, pandas and pyarrow given the
    path) or to a temporary file (the interruption then comes just before its fsync).
    """
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{target}."):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            raise KeyboardInterrupt
        real_fsync(fd)

    def half_then_die(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(self: object, where: Any = None, *args: Any, **kwargs: Any) -> Any:
            if isinstance(where, str | os.PathLike) and Path(where).name == target:
                buffer = io.BytesIO()
                real(self, buffer, *args, **kwargs)
                Path(where).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                raise KeyboardInterrupt
            return real(self, where, *args, **kwargs)

        return write

    monkeypatch.setattr(os, "fsync", fsync)
    for owner, name in (
        (Figure, "savefig"),
        (pd.DataFrame, "to_csv"),
        (pd.DataFrame, "to_parquet"),
    ):
        monkeypatch.setattr(owner, name, half_then_die(getattr(owner, name)))


@pytest.mark.parametrize("target", ["kpis.png", "episodes.csv", "episodes.parquet", "report.html"])
def test_a_report_killed_midway_leaves_the_previous_files_intact(
    campaign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    out = tmp_path / "out"
    write_report(campaign, out)
    before = _outputs(out)
    _interrupt_writing(monkeypatch, target)
    with pytest.raises(KeyboardInterrupt):
        write_report(campaign, out)
    monkeypatch.undo()
    after = _outputs(out)
    assert after[target] == before[target]  # the previous file, whole
    assert sorted(after) == sorted(before)  # and no temporary file left behind


def test_a_first_report_killed_midway_leaves_no_partial_file(
    campaign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_writing(monkeypatch, "episodes.csv")
    with pytest.raises(KeyboardInterrupt):
        write_report(campaign, tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / "episodes.csv").exists()
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in tmp_path.glob("*.png"))
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_cli_reports_a_file_it_cannot_write(
    campaign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def disk_full(src: str, dst: str) -> None:
        if Path(dst).name == "episodes.csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    result = CliRunner().invoke(app, ["report", str(campaign), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert f"cannot write {tmp_path / 'episodes.csv'}: No space left" in result.output
    assert not (tmp_path / "episodes.csv").exists()
    assert not list(tmp_path.glob(".*.tmp"))
