"""``testbed run``: its own help, overrides checked before Hydra, a quiet launch (docs/cli.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testbed.cli import _register, app

_register()
runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _testbed(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args], cwd=cwd, capture_output=True, text=True,
        timeout=240, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _refused(args: list[str], tmp_path: Path) -> str:
    """stderr of ``testbed run ARGS`` refused before anything ran (exit 2, no traceback)."""
    result = runner.invoke(app, ["run", *args, f"campaign.dir={tmp_path / 'c'}"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "╭" not in result.output
    assert not (tmp_path / "c").exists()
    return result.stderr


@pytest.mark.parametrize("plus", ["", "+", "++"])
def test_an_unknown_key_names_the_closest_and_never_suggests_adding_it(
    plus: str, tmp_path: Path
) -> None:
    stderr = _refused([f"{plus}campaign.episode=2"], tmp_path)
    assert stderr.splitlines()[0] == (
        "error: unknown config key 'campaign.episode'; did you mean 'campaign.episodes'?"
    )
    assert "+campaign" not in stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("campaign.zzz=1", "error: unknown config key 'campaign.zzz'; expected a key of campaign: "
         "name, dir, episodes, workers,"),
        ("policy.tl.ca=x", "did you mean 'policy.tls.ca'?"),
        ("campain.episodes=3", "did you mean 'campaign.episodes'?"),
        ("hydra/launcher=local hydra.launcher.n_jbs=3", "did you mean 'hydra.launcher.n_jobs'?"),
        ("site=kr-changwn", "error: unknown site 'kr-changwn'; expected one of jp-nagoya, "
         "kr-changwon, us-austin; did you mean 'kr-changwon'?"),
        ("policy=scripted_k", "error: unknown policy 'scripted_k'; expected one of  ... random, "
         "remote, ... did you mean 'scripted_kr'?"),
        ("task=conveyor", "error: unknown task 'conveyor'; expected one of conveyor_sort, "
         " ... touch_part; did you mean 'conveyor_sort'?"),
        ("+campaign=transfer3site", "error: unknown campaign preset 'transfer3site'; expected one "
         "of  ... smoke, transfer_3site; did you mean 'transfer_3site'?"),
        ("hydra/launcher=lcal", "error: unknown launcher 'lcal'"),
        ("task.env_id=Testbed/ConveyorSrt-v0", "error: unknown task.env_id "
         "'Testbed/ConveyorSrt-v0'; expected one of Testbed/ConveyorSort-v0,  ... "
         "Testbed/TouchPart-v0 ... ; did you mean 'Testbed/ConveyorSort-v0'?"),
        ("policy.serve=scripted:kr-changwn", "error: policy.serve: unknown scripted policy "
         "'scripted:kr-changwn'"),
        ("campaign.episodes=abc", "error: override 'campaign.episodes=abc': Value 'abc' of type "
         "'str' could not be converted to Integer"),
        ("campaign=smoke", "expected +campaign=OPTION"),
    ],
    ids=["key-listed", "key-nested", "key-first-part", "hydra-key", "site", "policy", "task",
         "preset", "launcher", "env-id", "policy-serve", "value", "preset-without-plus"],
)  # fmt: skip
def test_an_unknown_option_key_or_value_is_one_line(
    override: str, expected: str, tmp_path: Path
) -> None:
    stderr = _refused(["--dry-run", *override.split()], tmp_path)
    for fragment in expected.split(" ... "):  # lists that grow with the project are elided
        assert fragment in stderr.splitlines()[0], stderr
    assert "Config search path" not in stderr


def test_a_sweep_value_is_checked_too(tmp_path: Path) -> None:
    stderr = _refused(["-m", "site=kr-changwon,jp-nagoy"], tmp_path)
    assert stderr.splitlines()[0].endswith("did you mean 'jp-nagoya'?")


def test_free_form_keys_and_known_keys_pass(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--dry-run", "+task.env_kwargs.anything=1",
                                 "campaign.episodes=2", f"campaign.dir={tmp_path}"])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_help_is_the_testbeds_own_page() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    page = result.stdout
    assert page.startswith("Usage: testbed run [--dry-run] [-m] [OVERRIDE]...")
    expected = ["--dry-run", "--hydra-help", "+campaign=PRESET", "transfer_3site", "policy=NAME",
                "site=ID", "campaign.episodes=N", "campaign.workers=N", "hydra/launcher=L",
                "-m policy=scripted_kr,random site=jp-nagoya,us-austin"]  # fmt: skip
    assert [e for e in expected if e not in page] == []
    assert "powered by Hydra" not in page
    assert runner.invoke(app, ["run", "-h"]).stdout == page


def test_hydras_help_is_one_flag_away(tmp_path: Path) -> None:
    result = _testbed("run", "--hydra-help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("Hydra (") and "== Flags ==" in result.stdout


def test_a_sweep_shows_no_launcher_output_and_trials_log_to_their_folder(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "c"
    result = _testbed(
        "run", "-m", "policy=scripted_kr_inprocess", "site=kr-changwon,jp-nagoya",
        "hydra/launcher=local", "campaign.episodes=1", "task.max_steps=20",
        "task.snapshot_every=0", "campaign.report=false", f"campaign.dir={campaign_dir}",
        cwd=tmp_path, TESTBED_FORCE_PROGRESS="1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"{campaign_dir}: 2/2 trials done"), result.stdout
    for noise in ("[HYDRA]", "Joblib.Parallel", "#0 :", "testbed.campaign.entry"):
        assert noise not in result.stdout + result.stderr, noise
    assert "trials   " in result.stderr  # the progress bars
    for trial in ("scripted_kr_inprocess__kr-changwon__s0", "scripted_kr_inprocess__jp-nagoya__s0"):
        assert f"trial {trial}: done" in (campaign_dir / trial / "trial.log").read_text()
