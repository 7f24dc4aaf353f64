"""``testbed export minari``: a dataset Minari loads, whose episodes match the records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest
from typer.testing import CliRunner

import testbed.cli.episodes  # noqa: F401  (registers the commands)
import testbed.cli.export  # noqa: F401
from testbed.cli import app
from testbed.episodes.browse import EpisodeFilter
from testbed.episodes.minari_export import export_minari
from testbed.episodes.records import EpisodeRecord
from testbed.errors import ExportError
from tests.testbed.recording import record_episode, write_episode

runner = CliRunner()
DATASET = "testbed/conveyor-sort/kr-changwon-scripted-v0"


@pytest.fixture(autouse=True)
def datasets_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Minari writes under tmp_path only (it reads MINARI_DATASETS_PATH at call time)."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture(scope="module")
def records() -> list[EpisodeRecord]:
    """Two kr-changwon episodes and one us-austin episode."""
    return [
        record_episode("kr-changwon", 3, max_steps=40, episode=0),
        record_episode("kr-changwon", 4, max_steps=30, episode=1),
        record_episode("us-austin", 3, max_steps=20, episode=0),
    ]


@pytest.fixture
def campaign(tmp_path: Path, records: list[EpisodeRecord]) -> Path:
    for record in records:
        write_episode(tmp_path / "campaign", record)
    return tmp_path / "campaign"


def test_exported_dataset_loads_and_matches_the_records(
    campaign: Path, records: list[EpisodeRecord], datasets_root: Path
) -> None:
    result = export_minari(campaign, DATASET, where=EpisodeFilter(site="kr-changwon"))
    assert (result.episodes, result.steps) == (2, 70)
    assert result.path == datasets_root / DATASET and result.datasets_root == datasets_root
    dataset = minari.load_dataset(DATASET)
    assert (dataset.total_episodes, dataset.total_steps) == (2, 70)
    for episode, record in zip(dataset.iterate_episodes(), records[:2], strict=True):
        assert episode.actions.dtype == record.actions.dtype
        np.testing.assert_array_equal(episode.actions, record.actions)
        np.testing.assert_array_equal(episode.rewards, record.rewards)
        np.testing.assert_array_equal(episode.terminations, record.terminations)
        np.testing.assert_array_equal(episode.truncations, record.truncations)
        for name, values in record.observations.items():
            assert episode.observations[name].tobytes() == values.tobytes(), name
        np.testing.assert_array_equal(episode.infos["energy_j"][1:], record.infos["energy_j"])
        assert np.isnan(episode.infos["energy_j"][0])  # the reset row
    seeds = [m["seed"] for m in dataset.storage.get_episode_metadata([0, 1])]
    assert seeds == [3, 4]


def test_recover_environment_rebuilds_the_site(campaign: Path) -> None:
    export_minari(campaign, DATASET, where=EpisodeFilter(site="kr-changwon"))
    env = minari.load_dataset(DATASET).recover_environment()
    try:
        assert env.unwrapped.site.site_id == "kr-changwon"
        assert env.spec is not None and env.spec.kwargs == {"site": "kr-changwon"}
    finally:
        env.close()


_FRESH_PROCESS = """
import minari
env = minari.load_dataset("%s").recover_environment()
print(type(env.unwrapped).__name__, env.unwrapped.site.site_id)
env.close()
"""


def test_recover_environment_needs_no_import_of_envs(campaign: Path) -> None:
    """The spec's string entry point imports the env module; nothing is registered first."""
    export_minari(campaign, DATASET, where=EpisodeFilter(site="kr-changwon"))
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS % DATASET],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=os.environ.copy(),
        check=True,
    )
    assert "ConveyorSortEnv kr-changwon" in done.stdout


def test_mixed_sites_or_no_match_are_refused(campaign: Path) -> None:
    with pytest.raises(ExportError, match="2 env specs.*--site"):
        export_minari(campaign, DATASET)
    with pytest.raises(ExportError, match="no episode records match"):
        export_minari(campaign, DATASET, where=EpisodeFilter(site="jp-nagoya"))


def test_cli_exports_to_a_chosen_folder_and_refuses_to_overwrite(
    campaign: Path, tmp_path: Path
) -> None:
    out = tmp_path / "datasets"
    args = ["export", "minari", str(campaign), "--dataset-id", DATASET, "--out", str(out)]
    result = runner.invoke(app, [*args, "--site", "kr-changwon"])
    assert result.exit_code == 0, result.output
    assert f"OK {DATASET}: 2 episodes, 70 steps" in result.output
    assert (out / DATASET / "data").is_dir()
    assert os.environ["MINARI_DATASETS_PATH"] == str(tmp_path / "minari")  # restored
    again = runner.invoke(app, [*args, "--site", "kr-changwon"])
    assert again.exit_code == 2
    assert "already exists" in again.output
