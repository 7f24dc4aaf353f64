"""A built wheel, installed without the checkout, runs a campaign and finds the shipped models.

The wheel is built from this tree and installed into a folder of its own (``pip install
--target``), which goes first on ``PYTHONPATH`` so that its copy of the packages, not the
editable checkout, is what runs; the command runs from a folder outside the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root), str(REPO)],
        root,
        env,
        300,
    )
    wheels = list(root.glob("physical_ai_testbed-*.whl"))
    assert len(wheels) == 1, wheels
    site = root / "site"
    _run([*pip, "install", "--no-deps", "--target", str(site), str(wheels[0])], root, env, 300)
    env["PYTHONPATH"] = str(site)
    return root, env


def test_installed_packages_come_from_the_wheel_with_configs_models_and_types(
    installed: tuple[Path, dict[str, str]],
) -> None:
    root, env = installed
    probe = (
        "import envs, policies, protos, testbed; from testbed.config import CONFIG_DIR, MODELS_DIR;"
        "print(testbed.__file__); print(CONFIG_DIR); print(MODELS_DIR);"
        "assert (CONFIG_DIR / 'config.yaml').is_file();"
        "assert (CONFIG_DIR / 'campaign' / 'transfer_3site.yaml').is_file();"
        "assert (CONFIG_DIR / 'train.yaml').is_file();"
        "assert (MODELS_DIR / 'ppo_touch_kr' / 'model.zip').is_file();"
        "import pathlib; assert all((pathlib.Path(m.__file__).parent / 'py.typed').is_file()"
        " for m in (envs, policies, protos, testbed))"
    )
    out = _run([sys.executable, "-c", probe], root, env, 60).splitlines()
    site = str(root / "site")
    assert all(line.startswith(site) for line in out), out
    assert not (root / "site" / "testbed" / "_configs").is_symlink()


@pytest.mark.slow
def test_an_installed_wheel_runs_a_campaign_outside_the_checkout(
    installed: tuple[Path, dict[str, str]],
) -> None:
    root, env = installed
    out = root / "campaigns"
    args = [
        sys.executable,
        "-m",
        "testbed",
        "run",
        "+campaign=smoke",
        f"campaign.dir={out}",
        "campaign.episodes=1",
        "task.max_steps=40",
        "hydra.sweeper.params.policy=scripted_kr",
        "hydra.sweeper.params.site=kr-changwon",
    ]
    _run(args, root, env, 300)
    assert (out / "report.html").is_file()
    assert list(out.glob("scripted_kr__kr-changwon__s0/episodes/ep-*.npz"))
