"""Untrusted peers: per-team tokens (never logged), TLS and mutual TLS, plaintext refused."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from policies.server import PolicyServer, TlsConfig, read_team_tokens, serve
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from testbed.errors import PolicyAuthError, PolicyUnavailableError
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from tests.certs import make_pki
from tests.policies.doubles import (
    LinearPolicy,
    action_space,
    observation_space,
    sample_observation,
)

TOKENS = {"team-a": "alpha-7f3c9e2d", "team-b": "beta-51d0aa94"}
INTRUDER = "intruder-0b8e77c1"
SESSION = SessionInfo("trial-1", "kr-changwon", "sec", 0, 3)


@pytest.fixture
def running() -> Iterator[Callable[..., PolicyServer]]:
    servers: list[PolicyServer] = []

    def start(**kw: Any) -> PolicyServer:
        servers.append(serve(LinearPolicy(), "127.0.0.1:0", **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.stop(grace=0)


def client(address: str, **kw: Any) -> RemotePolicy:
    kw.setdefault("connect_timeout_s", 2.0)
    return RemotePolicy(address, observation_space=observation_space(),
                        action_space=action_space(), **kw)  # fmt: skip


def episode(remote: RemotePolicy) -> np.ndarray:
    with remote:
        remote.reset(SESSION)
        return remote.act(SESSION, sample_observation(np.random.default_rng(0)))


def test_each_team_has_its_own_token(running: Callable[..., PolicyServer]) -> None:
    server = running(token=TOKENS)
    for token in TOKENS.values():
        assert episode(client(server.address, token=token)).shape == (4,)
    for token in (INTRUDER, None, TOKENS["team-a"] + "x"):
        with pytest.raises(PolicyAuthError) as info:
            episode(client(server.address, token=token))
        assert "missing or invalid token" in str(info.value)
        assert all(t not in str(info.value) for t in (*TOKENS.values(), INTRUDER))


def test_tokens_are_never_logged_but_teams_are(
    running: Callable[..., PolicyServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = running(token=TOKENS, rps_per_token=1000)
    episode(client(server.address, token=TOKENS["team-b"]))
    with pytest.raises(PolicyAuthError):
        episode(client(server.address, token=INTRUDER))
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "team team-b opened session" in text and "team team-b closed session" in text
    assert "refused a call from ipv4:127.0.0.1" in text and "without a valid token" in text
    for secret in (*TOKENS.values(), INTRUDER):
        assert secret not in text
        assert all(secret not in repr(r.args) for r in caplog.records)


def test_a_tls_server_refuses_plaintext_and_keeps_serving(
    running: Callable[..., PolicyServer],
) -> None:
    pki = make_pki()
    server = running(tls=TlsConfig(pki.server_cert, pki.server_key), token=TOKENS)
    for _ in range(3):
        with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
            pb_grpc.PolicyServiceStub(channel).GetSpec(pb.GetSpecRequest(), timeout=1.0)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(PolicyUnavailableError):  # the testbed client says so too
            episode(client(server.address, token=TOKENS["team-a"], connect_timeout_s=0.5))
    other = make_pki()  # a server certificate from a CA the client does not trust
    with pytest.raises(PolicyUnavailableError):
        episode(client(server.address, tls_ca=other.ca, token=TOKENS["team-a"],
                       connect_timeout_s=0.5))  # fmt: skip
    secured = client(server.address, tls_ca=pki.ca, token=TOKENS["team-a"])
    assert episode(secured).shape == (4,)


def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    running: Callable[..., PolicyServer],
) -> None:
    pki, stranger = make_pki(), make_pki()
    server = running(tls=TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca))
    with pytest.raises(PolicyUnavailableError):
        episode(client(server.address, tls_ca=pki.ca, connect_timeout_s=0.5))
    with pytest.raises(PolicyUnavailableError):  # a certificate, but signed by another CA
        episode(client(server.address, tls_ca=pki.ca, tls_cert=stranger.client_cert,
                       tls_key=stranger.client_key, connect_timeout_s=0.5))  # fmt: skip
    ok = client(server.address, tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.client_key)
    assert episode(ok).shape == (4,)


def test_tokens_files_name_the_bad_line_never_the_token(tmp_path: Path) -> None:
    good = tmp_path / "tokens.txt"
    good.write_text("# teams\n\nteam-a: alpha-7f3c9e2d\n  team-b :  beta-51d0aa94  \n")
    assert read_team_tokens(good) == TOKENS
    cases = {
        "team-a alpha-7f3c9e2d\n": "line 1: expected 'team: token'",
        "team-a: alpha 7f3c9e2d\n": "line 1: expected 'team: token'",
        ": alpha-7f3c9e2d\n": "line 1: expected 'team: token'",
        "team-a: alpha-7f3c9e2d\nteam-a: beta-51d0aa94\n": "line 2: team 'team-a' is listed twice",
        "# nothing\n": "at least one 'team: token' line",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            read_team_tokens(bad)
        assert "alpha" not in str(info.value) and "beta" not in str(info.value)
    with pytest.raises(ValueError, match="share a token") as info:
        serve(LinearPolicy(), "127.0.0.1:0", token={"a": "same-token", "b": "same-token"})
    assert "same-token" not in str(info.value)


def test_the_bearer_scheme_is_matched_in_any_case(running: Callable[..., PolicyServer]) -> None:
    server = running(token=TOKENS)
    token = TOKENS["team-a"]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        for value in (f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"bEaReR  {token}"):
            metadata = (("authorization", value),)
            assert stub.GetSpec(pb.GetSpecRequest(), timeout=5, metadata=metadata).policy_id
        refused = (f"Basic {token}", f"Bearer{token}", token, "Bearer", "Bearer  ",
                   f"Bearer {token}x", f"Bearer {TOKENS['team-b']}x")  # fmt: skip
        for value in refused:
            with pytest.raises(grpc.RpcError) as info:
                stub.GetSpec(pb.GetSpecRequest(), timeout=5, metadata=(("authorization", value),))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, value
