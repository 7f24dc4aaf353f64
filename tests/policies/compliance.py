"""Shared compliance suite: every policy server's tests subclass `PolicyServerCompliance`.

The suite talks to a real server on 127.0.0.1 port 0 through the generated stubs, so it checks
the wire contract itself, not the testbed client.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from policies.protocol import FieldSpec, Policy, PolicySpec
from policies.server import PolicyServer, serve
from protos.specs import PROTOCOL_VERSION, field_to_proto, spec_from_proto
from protos.tensors import from_tensor, to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc

TIMEOUT = 5.0


def sample(spec: FieldSpec, rng: np.random.Generator) -> np.ndarray:
    low = np.maximum(spec.low if spec.low is not None else -1.0, -1.0)
    high = np.minimum(spec.high if spec.high is not None else 1.0, 1.0)
    return rng.uniform(low, high, spec.shape).astype(spec.dtype)


def open_request(spec: PolicySpec, **overrides: Any) -> pb.OpenSessionRequest:
    request = pb.OpenSessionRequest(
        observation=[field_to_proto(n, f) for n, f in spec.observation.items()],
        action=field_to_proto("action", spec.action),
        site="kr-changwon",
        campaign="compliance",
        episode=0,
        seed=7,
        protocol_version=PROTOCOL_VERSION,
        capabilities=pb.Capabilities(action_chunking=spec.capabilities.action_chunking),
    )
    for key, value in overrides.items():
        setattr(request, key, value)
    return request


class PolicyServerCompliance:
    """Subclass and implement `make_policy`; every test below then runs against it."""

    def make_policy(self) -> Policy:
        raise NotImplementedError

    @pytest.fixture
    def policy(self) -> Policy:
        return self.make_policy()

    @pytest.fixture
    def server(self, policy: Policy) -> Iterator[PolicyServer]:
        server = serve(policy, "127.0.0.1:0")
        assert server.wait_until_serving(TIMEOUT)
        yield server
        server.stop(grace=0)

    @pytest.fixture
    def channel(self, server: PolicyServer) -> Iterator[grpc.Channel]:
        with grpc.insecure_channel(server.address) as channel:
            yield channel

    @pytest.fixture
    def stub(self, channel: grpc.Channel) -> pb_grpc.PolicyServiceStub:
        return pb_grpc.PolicyServiceStub(channel)

    @pytest.fixture
    def spec(self, policy: Policy) -> PolicySpec:
        return policy.spec()

    def open(self, stub: pb_grpc.PolicyServiceStub, spec: PolicySpec) -> str:
        reply = stub.OpenSession(open_request(spec), timeout=TIMEOUT)
        assert reply.accepted, reply.errors
        return reply.session_id

    def act_request(self, spec: PolicySpec, session_id: str, step: int, seed: int = 0) -> Any:
        rng = np.random.default_rng(seed)
        observation = {n: to_tensor(sample(f, rng)) for n, f in spec.observation.items()}
        return pb.ActRequest(session_id=session_id, step=step, observation=observation)

    def assert_valid_action(self, spec: PolicySpec, reply: pb.ActResponse) -> np.ndarray:
        assert reply.status.code == 0, reply.status.message
        action = from_tensor(reply.action, "action")
        shape = spec.action.shape
        assert action.shape == shape or (
            spec.capabilities.action_chunking and action.shape[1:] == shape
        )
        assert np.all(np.isfinite(action))
        if spec.action.low is not None:
            assert np.all(action >= spec.action.low)
        if spec.action.high is not None:
            assert np.all(action <= spec.action.high)
        return action

    # --- discovery and handshake -------------------------------------------------------------

    def test_health_is_serving(self, channel: grpc.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "testbed.policy.v1.PolicyService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    def test_get_spec_matches_policy(self, stub: Any, spec: PolicySpec) -> None:
        reply = stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT)
        assert reply.protocol_version == PROTOCOL_VERSION
        decoded = spec_from_proto(reply)
        assert decoded.policy_id == spec.policy_id
        assert dict(decoded.observation) == dict(spec.observation)
        assert decoded.action == spec.action
        assert decoded.capabilities == spec.capabilities

    def test_open_session_lists_every_mismatch_once(self, stub: Any, spec: PolicySpec) -> None:
        names = list(spec.observation)
        request = open_request(spec, protocol_version="2.0")
        del request.observation[:]
        wrong_shape = FieldSpec((*spec.observation[names[1]].shape, 2), "float32")
        request.observation.extend(
            [field_to_proto(names[1], wrong_shape)]
            + [field_to_proto(n, FieldSpec(spec.observation[n].shape, "int64")) for n in names[2:3]]
            + [field_to_proto(n, spec.observation[n]) for n in names[3:]]
        )
        request.action.CopyFrom(field_to_proto("action", FieldSpec((7,), spec.action.dtype)))
        reply = stub.OpenSession(request, timeout=TIMEOUT)
        assert not reply.accepted and reply.session_id == ""
        fields = [e.field for e in reply.errors]
        assert sorted(fields) == sorted(
            [
                "protocol_version",
                f"observation.{names[0]}",
                f"observation.{names[1]}.shape",
                f"observation.{names[2]}.dtype",
                "action.shape",
            ]
        )
        missing = next(e for e in reply.errors if e.field == f"observation.{names[0]}")
        assert missing.got == "missing"
        assert missing.expected == spec.observation[names[0]].describe()

    def test_minor_version_mismatch_warns(self, stub: Any, spec: PolicySpec) -> None:
        reply = stub.OpenSession(open_request(spec, protocol_version="1.9"), timeout=TIMEOUT)
        assert reply.accepted and reply.session_id
        assert any("minor" in w for w in reply.warnings)

    def test_protocol_version_is_major_minor_and_major_alone_reads_as_minor_0(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        for version in ("1.1", "1.1.7", "01.01"):
            reply = stub.OpenSession(open_request(spec, protocol_version=version), timeout=TIMEOUT)
            assert reply.accepted and not reply.warnings, (version, reply.errors, reply.warnings)
        for version in ("1", "1.0", "1.0.7"):  # a 1.0 client: accepted, the minor differs
            reply = stub.OpenSession(open_request(spec, protocol_version=version), timeout=TIMEOUT)
            assert reply.accepted, (version, reply.errors)
            assert list(reply.warnings) == [
                f"protocol minor version differs: server 1.1, client {version}"
            ]
        for version in ("2", "0.9", "", "v1", "1.x", "1.0.0.0", " 1.0", "\u0661.0"):
            reply = stub.OpenSession(open_request(spec, protocol_version=version), timeout=TIMEOUT)
            assert not reply.accepted, version
            assert [e.field for e in reply.errors] == ["protocol_version"], version

    def test_a_malformed_offered_spec_is_one_error(self, stub: Any, spec: PolicySpec) -> None:
        name = next(iter(spec.observation))
        request = open_request(spec)
        request.observation[0].dtype = pb.DTYPE_UNSPECIFIED
        request.action.dtype = pb.DTYPE_UNSPECIFIED
        reply = stub.OpenSession(request, timeout=TIMEOUT)
        assert not reply.accepted
        assert [(e.field, e.expected, e.got) for e in reply.errors] == [
            (f"observation.{name}.dtype", "a known DType", "0 (DTYPE_UNSPECIFIED)"),
            ("action.dtype", "a known DType", "0 (DTYPE_UNSPECIFIED)"),
        ]

    def test_omitted_capabilities_warn_and_max_batch_is_checked(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        request = open_request(spec)
        request.ClearField("capabilities")
        reply = stub.OpenSession(request, timeout=TIMEOUT)
        assert reply.accepted == (not spec.capabilities.action_chunking), reply.errors
        assert any(w.startswith("capabilities not sent") for w in reply.warnings)
        caps = spec.capabilities
        if not caps.batching:
            return
        replies = {}
        for wanted in (0, caps.max_batch, caps.max_batch + 1):  # 0: not stated
            request = open_request(spec)
            request.capabilities.batching = True
            request.capabilities.max_batch = wanted
            replies[wanted] = stub.OpenSession(request, timeout=TIMEOUT)
        assert replies[0].accepted and replies[caps.max_batch].accepted
        over = replies[caps.max_batch + 1]
        assert not over.accepted
        assert [(e.field, e.expected, e.got) for e in over.errors] == [
            ("capabilities.max_batch", f"<= {caps.max_batch} (the server's max_batch)",
             str(caps.max_batch + 1)),
        ]  # fmt: skip

    # --- acting -------------------------------------------------------------------------------

    def test_unary_act_returns_action_within_spec(self, stub: Any, spec: PolicySpec) -> None:
        session_id = self.open(stub, spec)
        for step in range(3):
            reply = stub.Act(self.act_request(spec, session_id, step, step), timeout=TIMEOUT)
            assert reply.step == step and reply.session_id == session_id
            self.assert_valid_action(spec, reply)

    def test_stream_act_returns_actions(self, stub: Any, spec: PolicySpec) -> None:
        if not spec.capabilities.streaming:
            pytest.skip("policy does not advertise streaming")
        session_id = self.open(stub, spec)
        requests = [self.act_request(spec, session_id, s, s) for s in range(5)]
        replies = list(stub.ActStream(iter(requests), timeout=TIMEOUT))
        assert [r.step for r in replies] == list(range(5))
        for reply in replies:
            self.assert_valid_action(spec, reply)

    def test_stream_bad_step_is_in_band_and_stream_continues(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        session_id = self.open(stub, spec)
        bad = self.act_request(spec, session_id, 1)
        next(iter(bad.observation.values())).data = b"\x00"
        requests = [
            self.act_request(spec, session_id, 0),
            bad,
            self.act_request(spec, session_id, 2),
        ]
        replies = list(stub.ActStream(iter(requests), timeout=TIMEOUT))
        assert [r.status.code for r in replies] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
        assert "observation." in replies[1].status.message
        self.assert_valid_action(spec, replies[2])

    def test_batch_act_serves_several_sessions(self, stub: Any, spec: PolicySpec) -> None:
        if not spec.capabilities.batching:
            pytest.skip("policy does not advertise batching")
        sessions = [self.open(stub, spec) for _ in range(3)]
        items = [self.act_request(spec, s, 0, i) for i, s in enumerate(sessions)]
        reply = stub.ActBatch(pb.ActBatchRequest(items=items), timeout=TIMEOUT)
        assert [i.session_id for i in reply.items] == sessions
        for item in reply.items:
            self.assert_valid_action(spec, item)

    def test_resending_a_step_replays_the_cached_action(self, stub: Any, spec: PolicySpec) -> None:
        session_id = self.open(stub, spec)
        first = stub.Act(self.act_request(spec, session_id, 0, seed=1), timeout=TIMEOUT)
        again = stub.Act(self.act_request(spec, session_id, 0, seed=1), timeout=TIMEOUT)
        assert again.SerializeToString() == first.SerializeToString()
        streamed = next(stub.ActStream(iter([self.act_request(spec, session_id, 0, seed=1)])))
        assert streamed.SerializeToString() == first.SerializeToString()

    def test_a_retry_with_another_observation_is_failed_precondition(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        session_id = self.open(stub, spec)
        stub.Act(self.act_request(spec, session_id, 0, seed=1), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(self.act_request(spec, session_id, 0, seed=2), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"Act: session '{session_id}' step 0 was already answered for another" in (
            info.value.details()
        )
        reply = next(stub.ActStream(iter([self.act_request(spec, session_id, 0, seed=2)])))
        assert reply.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert not reply.HasField("action")
        assert reply.status.errors[0].field.startswith("observation.")
        self.assert_valid_action(  # the next step is served as usual
            spec, stub.Act(self.act_request(spec, session_id, 1, seed=2), timeout=TIMEOUT)
        )

    def test_ok_is_explicit_and_a_failed_step_has_no_action_and_is_not_used_up(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        session_id = self.open(stub, spec)
        reply = stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        assert reply.HasField("status") and reply.status == pb.StepStatus()  # code 0, no text
        bad = self.act_request(spec, session_id, 1)
        next(iter(bad.observation.values())).data += b"\x00"
        replies = list(
            stub.ActStream(iter([bad, self.act_request(spec, session_id, 1)]), timeout=TIMEOUT)
        )
        assert [r.HasField("status") for r in replies] == [True, True]
        assert replies[0].status.code != 0 and not replies[0].HasField("action")
        self.assert_valid_action(spec, replies[1])  # step 1 again: it was not used up
        if spec.capabilities.batching:
            item = self.act_request(spec, session_id, 2)
            batch = stub.ActBatch(pb.ActBatchRequest(items=[item]), timeout=TIMEOUT)
            assert batch.items[0].HasField("status") and batch.items[0].status.code == 0

    def test_a_malformed_tensor_is_reported_in_the_documented_words(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        session_id = self.open(stub, spec)
        name, field = next(iter(spec.observation.items()))
        request = self.act_request(spec, session_id, 0)
        request.observation[name].data += b"\x00"
        size = math.prod(field.shape) * np.dtype(field.dtype).itemsize
        expected = f"{size} bytes for {field.describe()}"
        text = f"observation.{name}.data: expected {expected}, got {size + 1}"
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(request, timeout=TIMEOUT)
        assert info.value.details() == f"Act: {text}"
        reply = next(stub.ActStream(iter([request]), timeout=TIMEOUT))
        assert reply.status.message == f"ActStream: {text}"
        assert [(e.field, e.expected, e.got) for e in reply.status.errors] == [
            (f"observation.{name}.data", expected, str(size + 1))
        ]

    def test_step_out_of_order_is_failed_precondition(self, stub: Any, spec: PolicySpec) -> None:
        session_id = self.open(stub, spec)
        stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        stub.Act(self.act_request(spec, session_id, 1), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "step" in info.value.details()

    def test_unknown_session_is_not_found(self, stub: Any, spec: PolicySpec) -> None:
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(self.act_request(spec, "no-such-session", 0), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

    def test_malformed_tensor_is_invalid_argument_and_server_keeps_serving(
        self, stub: Any, spec: PolicySpec
    ) -> None:
        session_id = self.open(stub, spec)
        name = next(iter(spec.observation))
        cases = {
            "data": lambda t: setattr(t, "data", t.data + b"\x00"),
            "dtype": lambda t: setattr(t, "dtype", 99),
            "shape": lambda t: t.shape.extend([1 << 40, 1 << 40]),
        }
        for part, corrupt in cases.items():
            request = self.act_request(spec, session_id, 0)
            corrupt(request.observation[name])
            with pytest.raises(grpc.RpcError) as info:
                stub.Act(request, timeout=TIMEOUT)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"observation.{name}.{part}" in info.value.details()
        request = self.act_request(spec, session_id, 0)
        del request.observation[name]
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(request, timeout=TIMEOUT)
        assert f"observation.{name}: expected" in info.value.details()
        self.assert_valid_action(
            spec, stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        )

    def test_reset_restarts_steps_and_close_forgets(self, stub: Any, spec: PolicySpec) -> None:
        session_id = self.open(stub, spec)
        stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        stub.Act(self.act_request(spec, session_id, 1), timeout=TIMEOUT)
        stub.ResetSession(
            pb.ResetSessionRequest(session_id=session_id, episode=1, seed=3), timeout=TIMEOUT
        )
        self.assert_valid_action(
            spec, stub.Act(self.act_request(spec, session_id, 0), timeout=TIMEOUT)
        )
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(self.act_request(spec, session_id, 1), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as info:
            stub.ResetSession(pb.ResetSessionRequest(session_id=session_id), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
