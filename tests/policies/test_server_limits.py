"""Limits of a shared policy server: sessions, idle sessions, requests per second, the CLI flags.

Each limit is hit on purpose; the answer must be a precise status with a message saying which
limit and what to do, and the server must keep serving everyone else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from policies._limits import RateLimiter
from policies.server import PolicyServer, serve
from protos.tensors import to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from tests.policies.compliance import TIMEOUT, open_request
from tests.policies.doubles import LinearPolicy, sample_observation, wait_for
from tests.testbed.servers import start_cli_server, stop

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
def running() -> Iterator[Callable[..., PolicyServer]]:
    servers: list[PolicyServer] = []

    def start(policy: Any, **kw: Any) -> PolicyServer:
        servers.append(serve(policy, "127.0.0.1:0", **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.stop(grace=0)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def open_session(stub: pb_grpc.PolicyServiceStub, metadata: Any = None) -> str:
    reply = stub.OpenSession(
        open_request(LinearPolicy().spec()), timeout=TIMEOUT, metadata=metadata
    )
    assert reply.accepted, reply.errors
    return reply.session_id


def act(stub: pb_grpc.PolicyServiceStub, session: str, step: int, metadata: Any = None) -> Any:
    obs = {k: to_tensor(v) for k, v in sample_observation(np.random.default_rng(step)).items()}
    request = pb.ActRequest(session_id=session, step=step, observation=obs)
    return stub.Act(request, timeout=TIMEOUT, metadata=metadata)


def refused(call: Callable[[], Any], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    return str(info.value.details())


def test_open_sessions_are_capped(running: Callable[..., PolicyServer]) -> None:
    server = running(LinearPolicy(), max_sessions=2)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        first, second = open_session(stub), open_session(stub)
        message = refused(lambda: open_session(stub), EXHAUSTED)
        assert message == "OpenSession: 2 sessions open; close some first"
        assert act(stub, first, 0).action.shape == [4]  # the open ones are still served
        stub.CloseSession(pb.CloseSessionRequest(session_id=second), timeout=TIMEOUT)
        assert act(stub, open_session(stub), 0).action.shape == [4]


def test_idle_sessions_are_closed_and_say_so(running: Callable[..., PolicyServer]) -> None:
    policy = LinearPolicy()
    server = running(policy, session_idle_s=0.3, max_sessions=2)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        idle, busy = open_session(stub), open_session(stub)
        step = 0

        def reaped() -> bool:
            nonlocal step
            act(stub, busy, step)  # keeps `busy` alive while `idle` waits
            step += 1
            return idle in policy.closed

        assert wait_for(reaped, 10.0), "the idle session was never closed"
        assert busy not in policy.closed
        message = refused(lambda: act(stub, idle, 0), grpc.StatusCode.NOT_FOUND)
        assert "closed after 0.3 s without a request (session idle timeout)" in message
        assert act(stub, open_session(stub), 0).action.shape == [4]  # its slot was freed


def test_requests_per_second_are_limited_per_team(running: Callable[..., PolicyServer]) -> None:
    server = running(LinearPolicy(), token={"team-a": "tok-a", "team-b": "tok-b"}, rps_per_token=2)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        spec = lambda team: stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT,  # noqa: E731
                                         metadata=bearer(f"tok-{team}"))  # fmt: skip
        spec("a"), spec("a")  # the burst
        message = refused(lambda: spec("a"), EXHAUSTED)
        assert message.startswith("GetSpec: team team-a is over its limit of 2 requests per second")
        assert "retry in" in message and "tok-a" not in message
        assert spec("b").policy_id == "linear"  # another team has its own bucket
        time.sleep(0.6)  # refills one request
        assert spec("a").policy_id == "linear"


def test_each_stream_message_counts_and_is_refused_in_band(
    running: Callable[..., PolicyServer],
) -> None:
    server = running(LinearPolicy(), rps_per_token=3)  # no tokens: limited per client host
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        session = open_session(stub)  # 1 of 3
        obs = {k: to_tensor(v) for k, v in sample_observation(np.random.default_rng(0)).items()}
        requests = [pb.ActRequest(session_id=session, step=i, observation=obs) for i in range(4)]
        replies = list(stub.ActStream(iter(requests), timeout=TIMEOUT))
    codes = [reply.status.code for reply in replies]
    assert codes == [0, 0, EXHAUSTED.value[0], EXHAUSTED.value[0]]
    assert (
        "peer ipv4:127.0.0.1 is over its limit of 3 requests per second"
        in replies[2].status.message
    )


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=4, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.25)  # one token comes back in 1/4 s
    assert limiter.take("b") == 0.0
    now[0] += 0.25
    assert limiter.take("a") == 0.0
    now[0] += 100.0  # a long pause refills to the burst, not beyond
    assert [limiter.take("a") for _ in range(3)][2] > 0
    with pytest.raises(ValueError, match="rps_per_token"):
        RateLimiter(rate=0)


def test_bad_limits_are_refused_when_serving() -> None:
    with pytest.raises(ValueError, match="session_idle_s"):
        serve(LinearPolicy(), "127.0.0.1:0", session_idle_s=-1)
    with pytest.raises(ValueError, match="rps_per_token"):
        serve(LinearPolicy(), "127.0.0.1:0", rps_per_token=float("nan"))


def test_the_serve_command_sets_every_limit(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# team: token\nteam-a: alpha-secret-1\nteam-b: beta-secret-2\n")
    process, address = start_cli_server(
        "tests.policies.doubles:make_linear_policy", "--tokens-file", str(tokens),
        "--max-sessions", "1", "--session-idle-s", "30", "--rps-per-token", "50",
        "--no-reflection",
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.PolicyServiceStub(channel)
            refused(lambda: open_session(stub, bearer("wrong")), grpc.StatusCode.UNAUTHENTICATED)
            session = open_session(stub, bearer("beta-secret-2"))
            refused(lambda: open_session(stub, bearer("alpha-secret-1")), EXHAUSTED)  # 1 session
            assert act(stub, session, 0, bearer("beta-secret-2")).action.shape == [4]
            from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

            reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
            listing = reflection_pb2.ServerReflectionRequest(list_services="")
            refused(lambda: next(reflect(iter([listing]), timeout=TIMEOUT)),
                    grpc.StatusCode.UNIMPLEMENTED)  # fmt: skip
            alpha = bearer("alpha-secret-1")
            burst = [stub.GetSpec.future(pb.GetSpecRequest(), timeout=TIMEOUT, metadata=alpha)
                     for _ in range(80)]  # fmt: skip
            codes = {f.code() for f in burst}
            assert EXHAUSTED in codes  # 80 at once is over 50 per second
    finally:
        stop(process)
