from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import gymnasium
import numpy as np
import pytest

from policies.server import PolicyServer, TlsConfig, serve
from testbed.errors import (
    InvalidActionError,
    PolicyAuthError,
    PolicyBatchError,
    PolicyDeadlineError,
    PolicyError,
    PolicyHandshakeError,
    PolicyUnavailableError,
)
from testbed.link.client import RemotePolicy
from testbed.link.policy import Policy, SessionInfo
from tests.certs import make_pki
from tests.policies.doubles import (
    OBS_SIZES,
    BadActionPolicy,
    BatchingPolicy,
    LinearPolicy,
    RaisingPolicy,
    SlowPolicy,
    action_space,
    observation_space,
    sample_observation,
    wait_for,
)
from tests.testbed.servers import start_cli_server, stop

SESSION = SessionInfo("episode-stream-1", "kr-changwon", "tests", 0, 11)


@pytest.fixture
def running() -> Iterator[Callable[..., PolicyServer]]:
    servers: list[PolicyServer] = []

    def start(policy: Any, address: str = "127.0.0.1:0", **kw: Any) -> PolicyServer:
        server = serve(policy, address, **kw)
        assert server.wait_until_serving(5)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


@pytest.fixture
def clients() -> Iterator[Callable[..., RemotePolicy]]:
    made: list[RemotePolicy] = []

    def make(address: str, **kw: Any) -> RemotePolicy:
        kw.setdefault("observation_space", observation_space())
        kw.setdefault("action_space", action_space())
        kw.setdefault("connect_timeout_s", 2.0)
        client = RemotePolicy(address, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _expected(observation: dict[str, np.ndarray]) -> np.ndarray:
    return np.append(observation["ee_pos"], observation["gripper"]).astype(np.float32) * 0.5


@pytest.mark.parametrize("mode", ["unary", "stream", "batch"])
def test_remote_actions_equal_in_process_actions(running: Any, clients: Any, mode: str) -> None:
    policy = LinearPolicy()
    remote = clients(running(policy).address, mode=mode)
    assert isinstance(remote, Policy) and isinstance(policy, Policy)
    remote.reset(SESSION)
    rng = np.random.default_rng(0)
    for _ in range(5):
        observation = sample_observation(rng)
        action = remote.act(SESSION, observation)
        assert action.dtype == np.float32
        np.testing.assert_array_equal(action, policy.act(SESSION, observation))
    remote.reset(SessionInfo(SESSION.session_id, episode=1, seed=12))  # ResetSession, not Open
    assert [s.episode for s in policy.resets] == [0, 1]
    assert remote.spec().policy_id == "linear" and remote.health() == "SERVING"


def test_act_batch_over_parallel_sessions(running: Any, clients: Any) -> None:
    policy = BatchingPolicy()
    remote = clients(running(policy).address, mode="batch")
    sessions = [SessionInfo(f"s{i}", seed=i) for i in range(8)]
    for session in sessions:
        remote.reset(session)
    rng = np.random.default_rng(1)
    for _ in range(3):
        observations = [sample_observation(rng) for _ in sessions]
        actions = remote.act_batch(sessions, observations)
        for action, observation in zip(actions, observations, strict=True):
            np.testing.assert_array_equal(action, _expected(observation))
    assert policy.batch_calls == 3


def test_act_batch_as_sessions_come_go_and_reorder(running: Any, clients: Any) -> None:
    remote = clients(running(BatchingPolicy()).address, mode="batch")
    a, b, c = (SessionInfo(name) for name in "abc")
    for session in (a, b, c):
        remote.reset(session)
    rng = np.random.default_rng(2)
    for group in ([a, b, c], [a, b, c], [c, a], [b], [a, b, c]):
        observations = [sample_observation(rng) for _ in group]
        actions = remote.act_batch(group, observations)
        for action, observation in zip(actions, observations, strict=True):
            np.testing.assert_array_equal(action, _expected(observation))
    remote.close_session(b)
    remote.reset(b)  # a new server session for b: the batch request is rebuilt
    observations = [sample_observation(rng) for _ in range(2)]
    actions = remote.act_batch([b, a], observations)
    np.testing.assert_array_equal(actions[0], _expected(observations[0]))


def test_handshake_mismatch_lists_fields(running: Any, clients: Any) -> None:
    spaces = dict(observation_space().spaces)
    del spaces["time"]
    spaces["ee_pos"] = gymnasium.spaces.Box(-1, 1, (6,), np.float32)
    remote = clients(
        running(LinearPolicy()).address,
        observation_space=gymnasium.spaces.Dict(spaces),
        action_space=gymnasium.spaces.Box(-2.0, 2.0, (4,), np.float64),
    )
    with pytest.raises(PolicyHandshakeError) as info:
        remote.reset(SESSION)
    fields = {f for f, _, _ in info.value.field_errors}
    assert fields == {"observation.time", "observation.ee_pos.shape", "action.dtype"}
    assert "observation.ee_pos.shape: expected [3], got [6]" in str(info.value)


def test_handshake_rejects_narrower_env_action_bounds(running: Any, clients: Any) -> None:
    narrow = gymnasium.spaces.Box(-0.5, 0.5, (4,), np.float32)
    remote = clients(running(LinearPolicy()).address, action_space=narrow)
    with pytest.raises(PolicyHandshakeError) as info:
        remote.reset(SESSION)
    assert {f for f, _, _ in info.value.field_errors} == {"action.low", "action.high"}


def test_lost_reply_is_retried_and_served_from_the_cache(running: Any, clients: Any) -> None:
    class LoseFirstActReply(grpc.ServerInterceptor):
        """Runs the first Act, then reports UNAVAILABLE as if the reply was lost."""

        lost = 0

        def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = continuation(details)
            if not details.method.endswith("/Act") or self.lost:
                return handler

            def act(request: Any, context: grpc.ServicerContext) -> Any:
                handler.unary_unary(request, context)
                type(self).lost += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "reply lost")

            return grpc.unary_unary_rpc_method_handler(
                act, handler.request_deserializer, handler.response_serializer
            )

    policy = LinearPolicy()
    remote = clients(running(policy, interceptors=[LoseFirstActReply()]).address)
    remote.reset(SESSION)
    observation = sample_observation(np.random.default_rng(2))
    np.testing.assert_array_equal(remote.act(SESSION, observation), _expected(observation))
    assert LoseFirstActReply.lost == 1 and policy.calls == 1  # the retry hit the cache


@pytest.mark.parametrize(
    ("kind", "reason"), [("nan", "non-finite"), ("shape", "shape"), ("bounds", "out-of-bounds")]
)
@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_bad_actions_raise_invalid_action(
    running: Any, clients: Any, kind: str, reason: str, mode: str
) -> None:
    remote = clients(running(BadActionPolicy(kind)).address, mode=mode)
    remote.reset(SESSION)
    with pytest.raises(InvalidActionError) as info:
        remote.act(SESSION, sample_observation(np.random.default_rng(0)))
    assert info.value.reason == reason


def test_policy_failures_are_policy_errors_and_stream_survives(running: Any, clients: Any) -> None:
    remote = clients(running(RaisingPolicy()).address, mode="stream")
    remote.reset(SESSION)
    observation = sample_observation(np.random.default_rng(0))
    for _ in range(2):  # in-band status: the same stream answers again
        with pytest.raises(PolicyError, match="model exploded"):
            remote.act(SESSION, observation)
    unsupported = clients(running(BadActionPolicy("dtype")).address)
    unsupported.reset(SESSION)
    with pytest.raises(PolicyError, match="bad action"):
        unsupported.act(SESSION, observation)


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_slow_policy_misses_deadline_without_hanging(running: Any, clients: Any, mode: str) -> None:
    policy = SlowPolicy(delay_s=2.0, only_site="slow")
    remote = clients(running(policy).address, mode=mode, deadline_s=0.1)
    slow, fast = SessionInfo("slow", site="slow", seed=0), SessionInfo("fast", site="fast", seed=0)
    remote.reset(slow)
    remote.reset(fast)
    observation = sample_observation(np.random.default_rng(0))
    start = time.monotonic()
    with pytest.raises(PolicyDeadlineError):
        remote.act(slow, observation)
    assert time.monotonic() - start < 1.0  # the deadline (0.1 s), not the policy (2 s)
    np.testing.assert_array_equal(remote.act(fast, observation), _expected(observation))
    policy.release.set()


def test_dead_server_process_is_unavailable_quickly(clients: Any) -> None:
    process, address = start_cli_server("tests.policies.doubles:make_linear_policy")
    try:
        remote = clients(address, mode="unary")
        streaming = clients(address, mode="stream")
        for client in (remote, streaming):
            client.reset(SESSION)
            client.act(SESSION, sample_observation(np.random.default_rng(0)))
        process.kill()
        process.wait(10)
        for client in (remote, streaming):
            start = time.monotonic()
            with pytest.raises(PolicyUnavailableError):
                client.act(SESSION, sample_observation(np.random.default_rng(1)))
            assert time.monotonic() - start < 1.0
    finally:
        stop(process)


def test_unreachable_server_and_restarted_server_are_unavailable(
    running: Any, clients: Any
) -> None:
    nowhere = clients("127.0.0.1:1", connect_timeout_s=0.3)
    with pytest.raises(PolicyUnavailableError, match="not reachable"):
        nowhere.reset(SESSION)
    first = running(LinearPolicy())
    remote = clients(first.address)
    remote.reset(SESSION)
    remote.act(SESSION, sample_observation(np.random.default_rng(0)))
    first.stop(grace=0)
    running(LinearPolicy(), address=first.address)  # same port, no sessions

    def reconnected() -> bool:
        try:
            return remote.health() == "SERVING"
        except PolicyUnavailableError:
            return False

    assert wait_for(reconnected, 5.0)
    with pytest.raises(PolicyUnavailableError, match="session lost"):
        remote.act(SESSION, sample_observation(np.random.default_rng(1)))


def test_token_and_tls(running: Any, clients: Any) -> None:
    pki = make_pki()
    tls = TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    server = running(LinearPolicy(), token="s3cret", tls=tls)
    mutual = {"tls_ca": pki.ca, "tls_cert": pki.client_cert, "tls_key": pki.client_key}
    good = clients(server.address, token="s3cret", **mutual)
    good.reset(SESSION)
    assert good.act(SESSION, sample_observation(np.random.default_rng(0))).shape == (4,)
    with pytest.raises(PolicyAuthError):
        clients(server.address, token="wrong", **mutual).reset(SESSION)
    with pytest.raises(PolicyUnavailableError):  # no client certificate: the TLS handshake fails
        clients(server.address, token="s3cret", tls_ca=pki.ca, connect_timeout_s=0.5).spec()


def test_batch_item_failures_are_reported_per_item(running: Any, clients: Any) -> None:
    server = running(LinearPolicy())
    remote = clients(server.address, mode="batch")
    sessions = [SessionInfo(f"s{i}") for i in range(3)]
    for session in sessions:
        remote.reset(session)
    observations = [sample_observation(np.random.default_rng(i)) for i in range(3)]
    observations[1] = dict(observations[1], gripper=np.array([np.nan], np.float32) * 0 + 9)
    with pytest.raises(PolicyBatchError) as info:
        remote.act_batch(sessions, observations)
    assert list(info.value.errors) == [1]
    assert isinstance(info.value.errors[1], InvalidActionError)
    assert info.value.actions[1] is None and info.value.actions[0] is not None


def test_observation_of_wrong_shape_is_caught_before_sending(running: Any, clients: Any) -> None:
    remote = clients(running(LinearPolicy()).address)
    remote.reset(SESSION)
    observation = {n: np.zeros(k + 1, np.float32) for n, k in OBS_SIZES.items()}
    with pytest.raises(PolicyError, match=r"observation\.\w+: expected shape \(\d,\), got"):
        remote.act(SESSION, observation)
