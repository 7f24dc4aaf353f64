"""A campaign of several tasks: one matrix row per (policy, task), tables grouped by task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testbed.episodes.records import EpisodeMeta, EpisodeRecord, record_path, write_record
from testbed.results.by_task import name_policies_by_task, task_label
from testbed.results.episode_table import load_episodes
from testbed.results.evaluator import transfer_matrix
from testbed.results.report import WrittenReport, write_report

SORT, PEG = "Testbed/ConveyorSort-v0", "Testbed/PegInHole-v0"
SEEDS = range(6)
# (task, policy, home, site, successes among the seeds): the same policy names on both tasks.
TRIALS = [
    (SORT, "pa", "site-a", "site-a", 6),
    (SORT, "pa", "site-a", "site-b", 2),
    (SORT, "pb", "site-b", "site-b", 5),
    (PEG, "pa", "site-a", "site-a", 4),
    (PEG, "pa", "site-a", "site-b", 0),
    (PEG, "pb", "site-b", "site-b", 6),
    (PEG, "pb", "site-b", "site-a", 3),
]


def _record(env_id: str, policy: str, home: str, site: str, seed: int, ok: bool) -> EpisodeRecord:
    trial = f"{task_label(env_id)}__{policy}__{site}"
    meta = EpisodeMeta(
        env_id=env_id,
        env_kwargs={"site": site},
        site=site,
        bundle_hash="b" * 8,
        seed=seed,
        episode=seed,
        campaign="tasks",
        trial=trial,
        policy=policy,
        policy_id=f"{policy}@1",
        home_site=home,
        ended_by="terminated",
        steps=3,
        metrics={"success_once": ok, "success_at_end": ok, "steps": 3, "sim_time_s": 1.0},
    )
    return EpisodeRecord(
        meta=meta,
        actions=np.zeros((3, 4)),
        observations={"x": np.zeros((4, 1))},
        rewards=np.zeros(3),
        terminations=np.array([False, False, True]),
        truncations=np.zeros(3, dtype=bool),
        latencies_ms=np.ones(3),
    )


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    (root / "campaign.json").write_text(json.dumps({"name": "tasks"}))
    for env_id, policy, home, site, successes in TRIALS:
        folder = root / f"{task_label(env_id)}__{policy}__{site}__s0"
        for seed in SEEDS:
            record = _record(env_id, policy, home, site, seed, seed < successes)
            write_record(record_path(folder, seed), record)
    return root


@pytest.fixture(scope="module")
def written(campaign: Path, tmp_path_factory: pytest.TempPathFactory) -> WrittenReport:
    return write_report(campaign, tmp_path_factory.mktemp("report"))


def test_task_labels() -> None:
    assert task_label(PEG) == "PegInHole"
    assert task_label("Testbed/ConveyorSort-v12") == "ConveyorSort"
    assert task_label("PandaPickAndPlace") == "PandaPickAndPlace"


def test_a_one_task_table_keeps_its_policy_names(campaign: Path) -> None:
    df = load_episodes(campaign)
    one = df[df["env_id"] == SORT]
    assert name_policies_by_task(one) is one
    assert transfer_matrix(one).tasks == {}


def test_each_policy_is_named_with_its_task_and_keeps_its_own_name(campaign: Path) -> None:
    df = name_policies_by_task(load_episodes(campaign))
    assert set(df["policy"]) == {
        "pa · ConveyorSort", "pb · ConveyorSort", "pa · PegInHole", "pb · PegInHole"
    }  # fmt: skip
    assert set(df["policy_name"]) == {"pa", "pb"}


def test_rows_are_grouped_by_task_then_home_site(written: WrittenReport) -> None:
    report = written.matrix
    assert report.policies == (
        "pa · ConveyorSort", "pb · ConveyorSort", "pa · PegInHole", "pb · PegInHole"
    )  # fmt: skip
    assert report.tasks["pb · PegInHole"] == "PegInHole"


def test_cells_count_only_their_own_tasks_episodes(written: WrittenReport) -> None:
    report = written.matrix
    for env_id, policy, _home, site, successes in TRIALS:
        cell = report.cell(f"{policy} · {task_label(env_id)}", site)
        assert cell is not None
        assert (cell.successes, cell.episodes) == (successes, len(SEEDS))
    assert report.cell("pb · ConveyorSort", "site-a") is None  # never run: "not run"


def test_each_matrix_has_one_table_per_task(written: WrittenReport) -> None:
    text = written.markdown.read_text()
    success = text[text.index("### Success rate") : text.index("### Retention")]
    sort_part = success[success.index("#### Task ConveyorSort") : success.index("#### Task Peg")]
    peg_part = success[success.index("#### Task PegInHole") :]
    assert "pa · ConveyorSort" in sort_part and "PegInHole" not in sort_part
    assert "pa · PegInHole" in peg_part and "ConveyorSort" not in peg_part
    assert "2/6" in sort_part and "0/6" in peg_part


def test_every_cell_link_of_the_html_reaches_its_section(written: WrittenReport) -> None:
    html = written.html.read_text()
    ids = set(re.findall(r'id="([^"]+)"', html))
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert links and links <= ids
    assert len(re.findall(r'id="([^"]+)"', html)) == len(ids)  # no id twice
    assert "<h4>Task PegInHole</h4>" in html


def test_the_episode_csv_names_the_task_and_the_policy_as_run(written: WrittenReport) -> None:
    df = pd.read_csv(written.episodes_csv)
    assert {"policy", "policy_name", "env_id"} <= set(df.columns)
    assert set(df.loc[df["env_id"] == PEG, "policy"]) == {"pa · PegInHole", "pb · PegInHole"}
