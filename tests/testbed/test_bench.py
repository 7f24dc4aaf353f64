"""``testbed bench``: the quick profile runs end to end and writes every section's figures.

A smoke test: no timing assertions (the machine is shared), only that every section ran and
produced finite numbers with the run's machine description.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from testbed.bench.env_overhead import CallLog, ClientSlot, Episode, measure_overhead
from testbed.bench.figures import SECTIONS
from testbed.cli import _register, app

_register()  # every command, as the console script has them (not a single-command app)
runner = CliRunner()
# The quick bench runs every section (minutes on 2 cores): the first test that uses it gets time.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    result = runner.invoke(app, ["bench", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "testbed bench (quick)" in result.output
    return json.loads(out.read_text())


def test_quick_run_reports_every_section(quick_report: dict) -> None:
    assert quick_report["profile"] == "quick"
    assert set(quick_report["sections"]) == set(SECTIONS)
    for name, section in quick_report["sections"].items():
        assert section["error"] == "", name
        assert section["figures"], name
        for figure in section["figures"]:
            assert isinstance(figure["value"], float) and math.isfinite(figure["value"]), figure
            assert figure["value"] > 0, figure
            if figure["ratio"] is not None:
                assert math.isfinite(figure["ratio"]) and figure["ratio"] > 0, figure


def test_quick_run_describes_the_machine(quick_report: dict) -> None:
    machine = quick_report["machine"]
    assert machine["cores"] >= 1 and machine["ram_gb"] > 0
    assert machine["packages"]["pybullet"] and machine["packages"]["gymnasium"]
    assert machine["python"] and machine["cpu"]


def test_env_rows_count_pybullet_calls(quick_report: dict) -> None:
    figures = quick_report["sections"]["env"]["figures"]
    sites = [f for f in figures if f["name"].startswith("ConveyorSort")]
    assert len(sites) == 3
    for figure in sites:
        calls = figure["details"]["calls_per_step"]
        assert calls["stepSimulation"] >= 1 and calls["calculateInverseKinematics"] == 1
        assert figure["goal"] and figure["met"] in (True, False)


def test_env_rows_with_a_coworker_measure_a_visit_against_their_own_goal(
    quick_report: dict,
) -> None:
    figures = quick_report["sections"]["env"]["figures"]
    # us-austin's restocker walks in: ConveyorSort runs through the first visit
    [sort] = [f for f in figures if f["name"].startswith("ConveyorSort us-austin ")]
    assert "co-worker in" in sort["name"] and sort["goal"].startswith("<= 1.15x")
    assert 0 < sort["details"]["coworker_present_share"] <= 1
    assert sort["details"]["calls_per_step"]["getClosestPoints"] > 0
    for figure in figures:  # every us-austin row says how often a person was in
        if " us-austin " in figure["name"]:
            assert "coworker_present_share" in figure["details"], figure["name"]
    others = [f for f in figures if " kr-changwon " in f["name"]]
    assert others and all(f["goal"].startswith("<= 1.1x") for f in others)


def test_env_section_measures_every_task(quick_report: dict) -> None:
    names = [f["name"] for f in quick_report["sections"]["env"]["figures"]]
    for task in ("ConveyorSort", "TouchPart"):
        assert len([n for n in names if n.startswith(f"{task} ")]) == 3, names


def test_env_option_names_a_registered_env_with_the_closest_one() -> None:
    result = runner.invoke(app, ["bench", "--only", "env", "--env", "Testbed/ConveyorSrot-v0"])
    assert result.exit_code == 2
    assert "unknown env 'Testbed/ConveyorSrot-v0'" in result.output
    assert "did you mean 'Testbed/ConveyorSort-v0'" in result.output


def test_only_rejects_an_unknown_section() -> None:
    result = runner.invoke(app, ["bench", "--only", "env,nope"])
    assert result.exit_code != 0
    assert "nope" in result.output


class _Counter:
    """A fake client: ``add`` changes state, so replaying its calls can be checked."""

    def __init__(self) -> None:
        self.total = 0.0
        self.constant = 3

    def add(self, value: float, scale: list[float]) -> float:
        self.total += value * scale[0]
        return self.total

    def getNumBodies(self) -> int:  # noqa: N802  (PyBullet's name)
        return 0


class _FakeEnv:
    """Steps call ``add`` on whatever client sits in ``self.client``."""

    def __init__(self) -> None:
        self.client = _Counter()

    def reset(self, seed: int) -> None:
        self.client.total = float(seed)

    def step(self, action: np.ndarray) -> None:
        scale = [2.0]
        self.client.add(float(action[0]), scale)
        scale[0] = 100.0  # a later in-place change must not alter the recorded call
        assert self.client.constant == 3


def test_call_log_replays_exactly_the_recorded_calls() -> None:
    env = _FakeEnv()
    log = CallLog(env.client)
    env.client = log  # type: ignore[assignment]
    env.step(np.array([1.5]))
    assert [(name, args) for name, _, args, _, _ in log.calls] == [("add", (1.5, [2.0]))]
    env.client = log._client
    actions = [np.array([1.0]), np.array([2.0])]
    overhead = measure_overhead(env, ClientSlot(env, "client"), [Episode(4, actions)], blocks=2)  # type: ignore[arg-type]
    assert overhead.steps == 2 and overhead.calls == {"add": 2} and overhead.same_physics
    assert len(overhead.env_s) == len(overhead.raw_s) == 2
    assert env.client.total == 4.0 + 2.0 * (1.0 + 2.0)  # env and raw make the same calls
