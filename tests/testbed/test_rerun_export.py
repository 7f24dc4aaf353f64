"""``testbed replay EP --rerun out.rrd``: read back with rerun's own reader, gated like video.

Needs the ``rerun`` extra (scripts/install.sh installs it, so CI runs these).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import testbed.cli.replay  # noqa: F401  (registers the command)
from testbed.cli import app
from testbed.episodes.records import EpisodeRecord
from testbed.errors import ReplayError
from tests.testbed.governance.test_export_paths import clear, decisions
from tests.testbed.recording import cached_episode, write_episode

rr = pytest.importorskip("rerun", reason="the rerun extra is not installed (pip install .[rerun])")
from rerun.chunk import RrdReader  # noqa: E402

runner = CliRunner()
US = "us-austin"


def _read(path: Path) -> tuple[dict[str, set[int]], set[str], dict[str, list[float]]]:
    """Per entity: the ``step`` values logged; the static entities; scalar values."""
    steps: dict[str, set[int]] = {}
    static: set[str] = set()
    scalars: dict[str, list[float]] = {}
    for chunk in RrdReader(path).store().stream().to_chunks():
        entity = str(chunk.entity_path)
        if chunk.is_static:
            static.add(entity)
            continue
        batch = chunk.to_record_batch()
        names = batch.schema.names
        if "step" in names:
            steps.setdefault(entity, set()).update(batch.column("step").to_pylist())
        for name in names:
            if name.endswith("Scalars:scalars"):
                values = batch.column(name).to_pylist()
                scalars.setdefault(entity, []).extend(v[0] for v in values if v)
    return steps, static, scalars


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EpisodeRecord, str]:
    folder = tmp_path_factory.mktemp("rerun")
    record = cached_episode(US)  # a co-worker walks in: a kinematic body of 14 links
    path = write_episode(folder / "campaign", record)
    out = folder / "ep.rrd"
    result = runner.invoke(app, ["replay", str(path), "--rerun", str(out), "--json"])
    return out, record, result.output


def test_the_recording_reads_back_with_every_step(
    exported: tuple[Path, EpisodeRecord, str],
) -> None:
    out, record, output = exported
    data = json.loads(output)
    assert data["status"] == "verified"  # exporting left the replay bit-identical
    assert data["rerun"]["steps"] == record.steps + 1
    steps, static, scalars = _read(out)
    every = set(range(record.steps + 1))
    for entity in ("/world/tool", "/world/contacts", "/scalars/reward", "/scalars/return"):
        assert steps[entity] == every, entity
    assert steps["/scalars/tcp_speed_mps"] == every - {0}  # infos follow actions
    # Link poses are logged when they move: the arm's last link moves, the floor does not.
    robot_links = [e for e in steps if e.startswith("/world/robot/link_")]
    assert len(robot_links) >= 6 and max(len(steps[e]) for e in robot_links) > 100
    assert "/world/floor/link_-1/shape_0" in static and steps["/world/floor/link_-1"] == {0}
    assert {"/world/tool_path", "/world/conveyor/link_-1/shape_0"} <= static
    assert any(e.startswith("/world/robot/link_") and e.endswith("/shape_0") for e in static)
    # The scalars are the record's: its return, per-step reward and KPIs.
    assert scalars["/scalars/return"][-1] == pytest.approx(record.meta.total_reward, rel=1e-6)
    assert np.allclose(scalars["/scalars/reward"][1:], record.rewards)
    assert scalars["/kpis/parts_sorted"][-1] == record.meta.metrics["parts_sorted"]


def test_events_and_contacts_are_logged(exported: tuple[Path, EpisodeRecord, str]) -> None:
    out, record, _ = exported
    steps, _, _ = _read(out)
    event_steps = {step + 1 for step, _ in record.meta.events}
    assert event_steps and steps["/events"] == event_steps
    texts = []
    for chunk in RrdReader(out).store().stream().to_chunks():
        if str(chunk.entity_path) == "/events":
            texts += [t[0] for t in chunk.to_record_batch().column("TextLog:text").to_pylist()]
    assert sorted(texts) == sorted(event for _, event in record.meta.events)


def test_rerun_is_gated_like_episode_records(tmp_path: Path) -> None:
    store = tmp_path / "campaign"
    path = write_episode(store, cached_episode(US))
    out = tmp_path / "ep.rrd"
    export = ["replay", str(path), "--rerun", str(out), "--from-step", "190"]
    refused = runner.invoke(app, [*export, "--to", "coordinator", "--basis", "study"])
    assert refused.exit_code == 2
    assert "governance.egress.episode_records = stays" in refused.output
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    clear(store, US, "episode_records")
    cleared = runner.invoke(app, [*export, "--to", "coordinator"])
    assert cleared.exit_code == 0, cleared.output
    assert "rerun: " in cleared.output and "open it with: rerun " in cleared.output
    steps, _, _ = _read(out)
    assert steps["/world/tool"] == set(range(190, 201))
    assert [d.split()[0] for d in decisions(store, US)] == ["refused", "allowed"]


def test_bad_rerun_requests_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_episode(tmp_path / "campaign", cached_episode(US))
    for args, message in (
        (["--rerun", str(tmp_path / "ep.mp4")], "expected a .rrd file"),
        (["--rerun", str(tmp_path / "no" / "ep.rrd")], "does not exist"),
        (["--rerun", str(tmp_path / "ep.rrd"), "--video", str(tmp_path / "v.gif")], "one output"),
    ):
        result = runner.invoke(app, ["replay", str(path), *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    from testbed.episodes.rerun_export import export_rerun

    monkeypatch.setitem(sys.modules, "rerun", None)  # as if the extra were not installed
    with pytest.raises(ReplayError, match=r"pip install 'physical-ai-testbed\[rerun\]'"):
        export_rerun(cached_episode(US), tmp_path / "ep.rrd")
