from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testbed.cli import _register, app
from testbed.cli.serve import load_policy
from testbed.errors import UsageError
from testbed.link._conformance_checks import CHECKS
from tests.policies.doubles import LinearPolicy
from tests.testbed.servers import start_cli_server, stop

_register()


def test_serve_scripted_passes_check_policy_and_stops_on_sigterm(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("team-token\n")
    process, address = start_cli_server("scripted:kr-changwon", "--token-file", str(token))
    try:
        runner = CliRunner()
        args = ["check-policy", address, "--token-file", str(token), "--steps", "10"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        for check in ("health", "GetSpec", "handshake", "deadline", "ActStream", "ActBatch"):
            assert check in result.output
        assert not re.search(r"│ FAIL\s+│", result.output)
        # The suite, then the client's; the image check skips (ConveyorSort has no image).
        assert result.output.count("PASS") == len(CHECKS) - 1 + 4
        assert re.search(r"│ image encodings\s+│ SKIP", result.output), result.output
        token.write_text("stolen-token")
        failed = runner.invoke(app, args)
        assert failed.exit_code == 1 and re.search(r"│ FAIL\s+│", failed.output)
        assert "stolen-token" not in failed.output
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        stop(process)


def test_check_policy_reports_a_handshake_mismatch() -> None:
    process, address = start_cli_server("tests.policies.doubles:CameraPolicy")
    try:
        result = CliRunner().invoke(app, ["check-policy", address, "--steps", "5"])
        assert result.exit_code == 1
        assert "handshake" in result.output and "FAIL" in result.output
        assert "observation.wrist_camera" in result.output
    finally:
        stop(process)


def test_load_policy_forms() -> None:
    random = load_policy("random", "jp-nagoya")
    assert random.spec().policy_id == "random@jp-nagoya"
    assert random.spec().action.shape == (4,)
    assert isinstance(load_policy("tests.policies.doubles:make_linear_policy"), LinearPolicy)
    assert isinstance(load_policy("tests.policies.doubles:LinearPolicy"), LinearPolicy)
    assert load_policy("scripted:us-austin").spec().policy_id.endswith("us-austin")
    peg = load_policy("scripted:jp-nagoya", env_id="Testbed/PegInHole-v0")
    assert type(peg).__name__ == "ScriptedPegController"
    assert "hole_pos" in peg.spec().observation
    with pytest.raises(UsageError, match="unknown scripted policy 'scripted:xx' for Testbed/Peg"):
        load_policy("scripted:xx", env_id="Testbed/PegInHole-v0")
    touch = load_policy("random", "jp-nagoya", "Testbed/TouchPart-v0")
    assert touch.spec().policy_id == "random@jp-nagoya/TouchPart-v0"
    with pytest.raises(UsageError, match="did you mean 'Testbed/TouchPart-v0'"):
        load_policy("random", "jp-nagoya", "Testbed/TouchPrt-v0")
    for bad in ("nonsense", "no.such.module:thing", "tests.policies.doubles:nothing"):
        with pytest.raises(UsageError, match=bad):
            load_policy(bad)
