"""The conformance suite (`testbed.link.conformance`) against the SDK server and broken ones.

The SDK server with the scripted controller passes every check; for each check, a server with
the promise it checks broken (`tests.testbed.broken_servers`) fails it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policies.scripted import scripted_policy
from policies.server import PolicyServer, serve
from testbed.link._conformance_checks import CHECKS
from testbed.link.conformance import run_conformance
from testbed.link.policy import spaces_to_specs
from tests.policies.doubles import specs
from tests.protos.v1_0 import AsServer10
from tests.testbed.broken_servers import BREAKAGES, StrictToken
from tests.testbed.test_image_link import ACT as IMAGE_ACT
from tests.testbed.test_image_link import OBS as IMAGE_OBS
from tests.testbed.test_image_link import PixelPolicy, RawOnlyPolicy

TOKEN = "team-token"
OBSERVATION, ACTION = specs()  # the ConveyorSort spaces


#: Checks that need an image field in the spaces (served by an image policy).
IMAGE_CHECKS = ("image encodings",)


def _serve(policy: object = None, **kwargs: object) -> PolicyServer:
    policy = scripted_policy("kr-changwon") if policy is None else policy
    server = serve(policy, "127.0.0.1:0", **kwargs)  # type: ignore[arg-type]
    assert server.wait_until_serving(10)
    return server


@pytest.fixture(scope="module")
def healthy() -> Iterator[PolicyServer]:
    server = _serve(token=TOKEN)
    yield server
    server.stop(grace=0)


def test_the_sdk_server_passes_every_check(healthy: PolicyServer) -> None:
    rows = run_conformance(healthy.address, OBSERVATION, ACTION, token=TOKEN)
    assert [name for name, _, _ in rows] == list(CHECKS)
    failed = [(name, detail) for name, ok, detail in rows if ok is False]
    assert not failed
    # The ConveyorSort spaces have no image field: only the image check is skipped.
    assert [name for name, ok, _ in rows if ok is None] == list(IMAGE_CHECKS)


def test_a_1_0_server_passes_with_the_packed_checks_skipped() -> None:
    server = _serve(interceptors=[AsServer10()])
    try:
        rows = run_conformance(server.address, OBSERVATION, ACTION)
    finally:
        server.stop(grace=0)
    result = {name: (ok, detail) for name, ok, detail in rows}
    packed = [name for name in CHECKS if name.startswith("packed:")]
    assert packed and all(result[name][0] is None for name in packed)
    assert result["GetSpec"][0] and "protocol 1.0" in result["GetSpec"][1]
    assert result["protocol_version"][1].startswith("1.0, 1.0.3, 1 accepted; 1.9 warn;")
    failed = [(n, d) for n, (ok, d) in result.items() if ok is False]
    assert not failed


@pytest.mark.parametrize(
    ("policy", "listed"), [(PixelPolicy, "[PNG, JPEG]"), (RawOnlyPolicy, "[none]")]
)
def test_image_policies_pass_every_check_whatever_encodings_they_list(
    policy: type, listed: str
) -> None:
    server = _serve(policy())
    observation, action = spaces_to_specs(IMAGE_OBS, IMAGE_ACT)
    try:
        rows = run_conformance(server.address, observation, action)
    finally:
        server.stop(grace=0)
    result = {name: (ok, detail) for name, ok, detail in rows}
    assert result["image encodings"][0] is True
    assert f"listed {listed} decoded" in result["image encodings"][1]
    failed = [(n, d) for n, (ok, d) in result.items() if ok is False]
    assert not failed


def test_only_runs_the_named_checks_and_refuses_unknown_ones(healthy: PolicyServer) -> None:
    rows = run_conformance(healthy.address, OBSERVATION, ACTION, token=TOKEN,
                           only=["health", "respond_by"])  # fmt: skip
    assert [(name, ok) for name, ok, _ in rows] == [("health", True), ("respond_by", True)]
    with pytest.raises(ValueError, match="unknown conformance check"):
        run_conformance(healthy.address, OBSERVATION, ACTION, only=["nope"])


def test_without_a_token_the_token_check_is_skipped(healthy: PolicyServer) -> None:
    server = _serve()
    try:
        (row,) = run_conformance(server.address, OBSERVATION, ACTION, only=["bearer token"])
    finally:
        server.stop(grace=0)
    assert row[1] is None


@pytest.mark.parametrize("check", sorted(BREAKAGES))
def test_a_server_breaking_the_promise_fails_its_check(check: str) -> None:
    image = check in IMAGE_CHECKS
    observation, action = spaces_to_specs(IMAGE_OBS, IMAGE_ACT) if image else (OBSERVATION, ACTION)
    server = _serve(PixelPolicy() if image else None, interceptors=BREAKAGES[check]())
    try:
        rows = run_conformance(server.address, observation, action, timeout_s=3.0)
    finally:
        server.stop(grace=0)
    result = {name: (ok, detail) for name, ok, detail in rows}
    assert result[check][0] is False, result[check]
    assert result[check][1]  # says what was wrong


def test_a_server_refusing_bearer_in_lower_case_fails_the_token_check() -> None:
    server = _serve(interceptors=[StrictToken(TOKEN)])
    try:
        rows = run_conformance(server.address, OBSERVATION, ACTION, token=TOKEN)
    finally:
        server.stop(grace=0)
    result = {name: (ok, detail) for name, ok, detail in rows}
    assert result["bearer token"][0] is False
    assert "'bearer <token>'" in result["bearer token"][1]
    assert TOKEN not in result["bearer token"][1]  # never echoed
    assert all(ok is not False for name, (ok, _) in result.items() if name != "bearer token")


def test_every_check_has_a_broken_server_that_fails_it() -> None:
    assert set(BREAKAGES) | {"bearer token"} == set(CHECKS)
