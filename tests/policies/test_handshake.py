"""OpenSession checks without a server: the version rule, one error per fault, capabilities."""

from __future__ import annotations

import pytest

from policies._handshake import check_open, check_version
from protos.specs import Capabilities, PolicySpec
from protos.v1 import policy_service_pb2 as pb
from tests.policies.compliance import open_request
from tests.policies.doubles import LinearPolicy


@pytest.mark.parametrize("version", ["1.1", "1.1.0", "1.1.12", "01.01"])
def test_versions_that_read_as_1_1_are_accepted_silently(version: str) -> None:
    assert check_version(version) == ([], [])


@pytest.mark.parametrize("version", ["1", "1.0", "1.0.3"])
def test_a_1_0_client_is_accepted_with_the_minor_warning(version: str) -> None:
    want = f"protocol minor version differs: server 1.1, client {version}"
    assert check_version(version) == ([], [want])


def test_another_minor_warns_and_another_major_rejects() -> None:
    errors, warnings = check_version("1.4")
    assert errors == [] and warnings == ["protocol minor version differs: server 1.1, client 1.4"]
    errors, warnings = check_version("2")
    assert [(e.field, e.expected, e.got) for e in errors] == [("protocol_version", "major 1", "2")]
    assert warnings == []


@pytest.mark.parametrize("version", ["", "v1", "1.", ".1", "1.0.0.0", "1.0-rc1", "1 ", "\u0661"])
def test_anything_else_is_a_format_error(version: str) -> None:
    errors, warnings = check_version(version)
    assert [(e.field, e.got) for e in errors] == [("protocol_version", repr(version))]
    assert errors[0].expected == "'1.1' (MAJOR.MINOR, or MAJOR for MAJOR.0)" and warnings == []


def _errors(spec: PolicySpec, request: pb.OpenSessionRequest) -> list[tuple[str, str, str]]:
    errors, _ = check_open(spec, request)
    return [(e.field, e.expected, e.got) for e in errors]


def test_a_malformed_or_repeated_offer_is_reported_once() -> None:
    spec = LinearPolicy().spec()
    request = open_request(spec)
    request.observation[0].dtype = pb.DTYPE_UNSPECIFIED
    request.observation[1].shape.append(-1)
    request.observation.append(request.observation[2])  # offered twice, both well formed
    names = list(spec.observation)
    assert _errors(spec, request) == [
        (f"observation.{names[0]}.dtype", "a known DType", "0 (DTYPE_UNSPECIFIED)"),
        (f"observation.{names[1]}.shape", "non-negative dimensions", "[3, -1]"),
        (f"observation.{names[2]}", "each name once", "duplicate"),
    ]


def test_capabilities_max_batch_is_read_only_with_batching() -> None:
    spec = LinearPolicy(Capabilities(batching=True, max_batch=8)).spec()
    request = open_request(spec)
    request.capabilities.max_batch = 9  # batching false: not read
    assert _errors(spec, request) == []
    request.capabilities.batching = True
    assert _errors(spec, request) == [
        ("capabilities.max_batch", "<= 8 (the server's max_batch)", "9")
    ]
    no_batching = LinearPolicy(Capabilities(batching=False, max_batch=0)).spec()
    assert _errors(no_batching, request) == [
        ("capabilities.batching", "false (server has no ActBatch)", "true")
    ]


def test_omitted_capabilities_are_read_as_defaults_with_a_warning() -> None:
    spec = LinearPolicy().spec()
    request = open_request(spec)
    assert check_open(spec, request) == ([], [])
    request.ClearField("capabilities")
    errors, warnings = check_open(spec, request)
    assert errors == [] and len(warnings) == 1 and warnings[0].startswith("capabilities not sent")
    chunking = LinearPolicy(Capabilities(action_chunking=True)).spec()
    assert [e.field for e in check_open(chunking, request)[0]] == ["capabilities.action_chunking"]


def test_packed_observations_wanted_from_a_server_without_them_is_a_field_error() -> None:
    spec = LinearPolicy().spec()
    request = open_request(spec)
    request.capabilities.packed_observations = True
    assert _errors(spec, request) == []
    unpacked = LinearPolicy(Capabilities(packed_observations=False)).spec()
    assert _errors(unpacked, request) == [
        ("capabilities.packed_observations", "false (server has no packed observations)", "true")
    ]
