"""The testbed client's observation forms (protocol 1.1) against a 1.1 and a 1.0 server.

``auto`` packs where the server advertises it and sends the named map to a 1.0 server (the SDK
server answering through the released 1.0 schema, `tests.protos.v1_0.AsServer10`); ``packed``
refuses a server without packing; ``named`` never packs. What reaches the wire is counted by
an interceptor, and the actions of every form and mode are the named form's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from policies.server import PolicyServer, serve
from testbed.errors import PolicyHandshakeError, PolicyProtocolError
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from tests.policies.doubles import (
    LinearPolicy,
    action_space,
    observation_space,
    sample_observation,
)
from tests.protos.v1_0 import AsServer10
from tests.testbed.broken_servers import Rewriter

MODES = ("unary", "stream", "batch")


class WireForms(grpc.ServerInterceptor):
    """Counts the observation forms the server receives (packed or named), by RPC."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def _note(self, rpc: str, request: Any) -> None:
        items = request.items if rpc == "ActBatch" else [request]
        for item in items:
            self.seen.append((rpc, "packed" if item.HasField("packed_observation") else "named"))

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        rpc = details.method.rsplit("/", 1)[-1]
        if handler is None or rpc not in ("Act", "ActStream", "ActBatch"):
            return handler
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}  # fmt: skip
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                self._note(rpc, request)
                return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
        streamed = handler.stream_stream

        def stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            def noted() -> Iterator[Any]:
                for request in requests:
                    self._note(rpc, request)
                    yield request

            yield from streamed(noted(), context)

        return grpc.stream_stream_rpc_method_handler(stream, **kwargs)


@pytest.fixture
def running() -> Iterator[Callable[..., tuple[PolicyServer, WireForms]]]:
    servers: list[PolicyServer] = []

    def start(
        *interceptors: grpc.ServerInterceptor, policy: LinearPolicy | None = None
    ) -> tuple[PolicyServer, WireForms]:
        forms = WireForms()
        policy = policy or LinearPolicy()
        server = serve(policy, "127.0.0.1:0", interceptors=[*interceptors, forms])
        assert server.wait_until_serving(5)
        servers.append(server)
        return server, forms

    yield start
    for server in servers:
        server.stop(grace=0)


def _episode(address: str, mode: str, form: str) -> tuple[list[bool], list[np.ndarray]]:
    """Three steps of two sessions; returns whether each session packs, and the actions."""
    sessions = [SessionInfo(f"{mode}-{i}", "kr-changwon", "tests", 0, i) for i in range(2)]
    observations = [sample_observation(np.random.default_rng(i)) for i in range(3)]
    actions = []
    with RemotePolicy(address, observation_space=observation_space(),
                      action_space=action_space(), mode=mode,  # type: ignore[arg-type]
                      observation_form=form, max_batch=2) as remote:  # type: ignore[arg-type]  # fmt: skip
        for session in sessions:
            remote.reset(session)
        packs = [remote.uses_packed(s) for s in sessions]
        for observation in observations:
            if mode == "batch":
                actions.extend(remote.act_batch(sessions, [observation, observation]))
            else:
                actions.append(remote.act(sessions[0], observation))
    return packs, actions


@pytest.mark.parametrize("mode", MODES)
def test_auto_packs_against_a_1_1_server_with_the_named_forms_actions(
    running: Callable[..., tuple[PolicyServer, WireForms]], mode: str
) -> None:
    server, forms = running()
    packs, packed = _episode(server.address, mode, "auto")
    assert packs == [True, True]
    assert {form for _, form in forms.seen} == {"packed"} and len(forms.seen) >= 3
    forms.seen.clear()
    packs, named = _episode(server.address, mode, "named")
    assert packs == [False, False] and {form for _, form in forms.seen} == {"named"}
    assert all(np.array_equal(a, b) for a, b in zip(packed, named, strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_auto_sends_named_observations_to_a_1_0_server(
    running: Callable[..., tuple[PolicyServer, WireForms]], mode: str
) -> None:
    server, forms = running(AsServer10())
    packs, actions = _episode(server.address, mode, "auto")
    assert packs == [False, False] and {form for _, form in forms.seen} == {"named"}
    assert len(actions) == (6 if mode == "batch" else 3)


def test_packed_refuses_a_server_that_states_no_layout_and_closes_the_session(
    running: Callable[..., tuple[PolicyServer, WireForms]],
) -> None:
    policy = LinearPolicy()
    server, _ = running(AsServer10(), policy=policy)
    with pytest.raises(PolicyHandshakeError, match="without a packed_layout") as info:
        _episode(server.address, "unary", "packed")
    assert info.value.field_errors == [("packed_layout", "the session's packed layout", "none")]
    assert len(policy.resets) == 1 and len(policy.closed) == 1  # opened, then closed again


def test_an_unknown_observation_form_is_refused() -> None:
    with pytest.raises(ValueError, match="observation_form: expected one of"):
        RemotePolicy("127.0.0.1:1", observation_form="zip")  # type: ignore[arg-type]


def _float64_layout(reply: Any) -> Any:
    if reply.HasField("packed_layout"):
        reply.packed_layout.fields[0].dtype = 2  # DTYPE_FLOAT64: not the float32 offered
    return reply


def test_a_layout_that_does_not_fit_the_offered_fields_is_refused(
    running: Callable[..., tuple[PolicyServer, WireForms]],
) -> None:
    policy = LinearPolicy()
    rewrite = Rewriter("/testbed.policy.v1.PolicyService/OpenSession", reply=_float64_layout)
    server, _ = running(rewrite, policy=policy)
    with pytest.raises(PolicyProtocolError) as info:
        _episode(server.address, "unary", "auto")
    assert str(info.value) == (
        "OpenSession: malformed packed_layout: packed_layout.fields[0]: expected float32[3] "
        "(as offered), got float64[3]"
    )
    assert len(policy.resets) == 1 and len(policy.closed) == 1  # opened, then closed again
