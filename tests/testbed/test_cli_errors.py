"""Every command reports a mistake the same way: ``error: ...`` on stderr, exit 2, no traceback.

A run whose work failed exits 1; a real bug keeps its traceback (docs/cli.md).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from envs.errors import MissingStationError, SimulationError, UnknownSiteError
from testbed.cli import _register, app
from testbed.cli._errors import did_you_mean, exit_code
from testbed.errors import PolicyUnavailableError, ReplayDivergenceError, UsageError

_register()
runner = CliRunner()

SITES = "jp-nagoya, kr-changwon, us-austin"


def _mistake(result: Result) -> str:
    """The stderr of a command refused as a usage error (checked: exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "╭" not in result.output  # no rich box
    assert result.stderr.startswith("error: "), result.output
    return result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def test_an_unknown_command_names_the_closest() -> None:
    stderr = _mistake(runner.invoke(app, ["serv"]))
    assert stderr.splitlines()[0].endswith("did you mean 'serve'?")
    assert "hint: testbed --help" in stderr


def test_a_click_usage_error_is_one_error_line_and_a_hint() -> None:
    stderr = _mistake(runner.invoke(app, ["serve", "--bogus", "x"]))
    assert stderr == "error: no such option: --bogus\nhint: testbed serve --help\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "scripted:kr-changwn"],
         "error: unknown scripted policy 'scripted:kr-changwn' for Testbed/ConveyorSort-v0; "
         "expected one of "
         "scripted:jp-nagoya, scripted:kr-changwon, scripted:us-austin; "
         "did you mean 'scripted:kr-changwon'?"),
        (["serve", "randm"],
         "error: policy 'randm': expected scripted:<site>, random, sb3:<model.zip> or "
         "module:attribute; did you mean 'random'?"),
        (["serve", "random", "--site", "us-austn"],
         f"error: unknown site 'us-austn'; expected one of {SITES}, or a bundle folder; "
         "did you mean 'us-austin'?"),
        (["serve", "sb3:no/such/model.zip"],
         "error: policy 'sb3:no/such/model.zip': no such model file 'no/such/model.zip'"),
        (["serve", "tests.policies.doubles:LinearPolicyy"],
         "error: policy 'tests.policies.doubles:LinearPolicyy': module tests.policies.doubles "
         "has no attribute 'LinearPolicyy'; did you mean 'LinearPolicy'?"),
        (["serve", "scripted:kr-changwon", "--address", "localhost"],
         "error: address 'localhost': expected HOST:PORT"),
        (["check-policy", "localhost"], "error: address 'localhost': expected HOST:PORT"),
        (["check-policy", "127.0.0.1:1", "--site", "kr-changwn"],
         f"error: unknown site 'kr-changwn'; expected one of {SITES}, or a bundle folder; "
         "did you mean 'kr-changwon'?"),
        (["bench", "--only", "env,lnk"],
         "error: --only: unknown section 'lnk'; expected one of env, link, campaign, replay, "
         "memory, camera; did you mean 'link'?"),
    ],
    ids=["scripted-site", "policy-form", "random-site", "sb3-file", "module-attribute",
         "serve-address", "check-address", "check-site", "bench-section"],
)  # fmt: skip
def test_a_mistake_is_one_line_with_the_closest_valid_value(args: list[str], expected: str) -> None:
    stderr = _mistake(runner.invoke(app, args))
    assert stderr.splitlines()[0].startswith(expected), stderr


def test_a_missing_file_option_is_a_usage_error(tmp_path: Path) -> None:
    stderr = _mistake(runner.invoke(app, ["check-policy", "127.0.0.1:1", "--token-file",
                                          str(tmp_path / "nope")]))  # fmt: skip
    assert "'--token-file'" in stderr and "does not exist" in stderr


def test_serve_on_a_busy_port_is_one_line_naming_the_address_and_exit_1(busy_port: int) -> None:
    address = f"127.0.0.1:{busy_port}"
    result = runner.invoke(app, ["serve", "scripted:kr-changwon", "--address", address])
    assert result.exit_code == 1, result.output
    error, hint = result.stderr.splitlines()
    assert error == (
        f"error: address '{address}': cannot listen there (address already in use); expected a "
        "free port on an address of this machine"
    )
    assert hint.startswith(f"hint: see what holds the port: ss -ltnp 'sport = :{busy_port}'")
    assert "serving" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "{tmp}/nope"], "error: campaign folder '{tmp}/nope': no such folder"),
        (["report", "{tmp}"], "error: {tmp}: no episode records found"),
        (["episodes", "{tmp}/nope"], "error: {tmp}/nope: no such campaign folder"),
        (["replay", "{tmp}/ep-00000.npz"], "error: {tmp}/ep-00000.npz: no such episode record"),
        (["export", "minari", "{tmp}/nope", "--dataset-id", "a/b-v0"],
         "error: {tmp}/nope: no such campaign folder"),
    ],
    ids=["report-folder", "report-empty", "episodes-folder", "replay-file", "export-folder"],
)  # fmt: skip
def test_a_missing_folder_or_file_is_a_usage_error(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    stderr = _mistake(runner.invoke(app, [a.format(tmp=tmp_path) for a in args]))
    assert stderr.startswith(expected.format(tmp=tmp_path)), stderr


def test_a_real_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import testbed.cli.serve as serve

    def broken(name: str, site: str = "", env_id: str = "") -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(serve, "load_policy", broken)
    result = runner.invoke(app, ["serve", "random", "--address", "127.0.0.1:0"])
    assert isinstance(result.exception, RuntimeError)  # not caught: Python prints it


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), 2),
        (UnknownSiteError("x"), 2),
        (MissingStationError("kr-changwon", "conveyor", "conveyor_sort"), 2),
        (ReplayDivergenceError("f", 1, 2, "reward", (), 0.0, 1.0), 1),
        (PolicyUnavailableError("x"), 1),
        (SimulationError("x"), 1),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_mistakes_exit_2_and_failed_work_exits_1(error: Exception, code: int) -> None:
    assert exit_code(error) == code


def test_did_you_mean_only_when_close() -> None:
    assert did_you_mean("kr-changwn", ["kr-changwon", "jp-nagoya"]) == (
        "; did you mean 'kr-changwon'?"
    )
    assert did_you_mean("atlantis", ["kr-changwon", "jp-nagoya"]) == ""
