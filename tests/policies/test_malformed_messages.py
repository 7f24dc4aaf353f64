"""Malformed messages at the gRPC boundary, both directions.

Client -> server: every bad request gets a precise status code and a message naming the field,
and the server keeps serving. Server -> client: a lying server's malformed replies become typed
testbed errors (never a crash, never a numpy error from deep inside the client).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from policies.server import PolicyServer, serve
from protos.specs import spec_to_proto
from protos.tensors import MAX_ELEMENTS, to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from testbed.errors import InvalidActionError, PolicyError, PolicyProtocolError
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from tests.policies.compliance import TIMEOUT, open_request
from tests.policies.doubles import (
    LinearPolicy,
    action_space,
    observation_space,
    sample_observation,
)

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
F32 = pb.DTYPE_FLOAT32


def good_observation() -> dict[str, pb.Tensor]:
    obs = sample_observation(np.random.default_rng(0))
    return {name: to_tensor(value) for name, value in obs.items()}


def with_ee_pos(**fields: Any) -> dict[str, pb.Tensor]:
    observation = good_observation()
    observation["ee_pos"] = pb.Tensor(**fields)
    return observation


# (id, observation, expected code, fragments of the message)
BAD_TENSORS = [
    ("bytes-short", with_ee_pos(dtype=F32, shape=[3], data=b"\0" * 11), INVALID,
     ["observation.ee_pos.data", "expected 12 bytes for float32[3], got 11"]),
    ("bytes-long", with_ee_pos(dtype=F32, shape=[3], data=b"\0" * 13), INVALID,
     ["observation.ee_pos.data", "got 13"]),
    ("dtype-mismatch", with_ee_pos(dtype=pb.DTYPE_FLOAT64, shape=[3], data=b"\0" * 24), INVALID,
     ["observation.ee_pos", "expected float32[3], got float64[3]"]),
    ("unknown-dtype", with_ee_pos(dtype=99, shape=[3], data=b"\0" * 12), INVALID,
     ["observation.ee_pos.dtype", "expected a known DType, got 99"]),
    ("unspecified-dtype", with_ee_pos(shape=[3], data=b"\0" * 12), INVALID,
     ["observation.ee_pos.dtype", "got 0"]),
    ("absurd-shape", with_ee_pos(dtype=F32, shape=[1 << 40, 1 << 40], data=b"\0" * 12), INVALID,
     ["observation.ee_pos.shape", f"at most {MAX_ELEMENTS} elements"]),
    ("negative-dim", with_ee_pos(dtype=F32, shape=[-3], data=b""), INVALID,
     ["observation.ee_pos.shape", "non-negative"]),
    ("rank-9", with_ee_pos(dtype=F32, shape=[1] * 9, data=b"\0" * 4), INVALID,
     ["observation.ee_pos.shape", "at most 8 dimensions"]),
    ("wrong-shape", with_ee_pos(dtype=F32, shape=[1, 3], data=b"\0" * 12), INVALID,
     ["observation.ee_pos", "expected float32[3], got float32[1, 3]"]),
    ("unknown-encoding", with_ee_pos(dtype=F32, shape=[3], data=b"\0" * 12, encoding=7), INVALID,
     ["observation.ee_pos.encoding", "expected RAW, PNG or JPEG, got 7"]),
    ("image-garbage", with_ee_pos(dtype=pb.DTYPE_UINT8, shape=[2, 2], data=b"not a png",
                                  encoding=pb.ENCODING_PNG), INVALID,
     ["observation.ee_pos.data", "got bytes that cannot be decoded"]),
    ("missing-field", {k: v for k, v in good_observation().items() if k != "ee_pos"}, INVALID,
     ["observation.ee_pos", "missing"]),
]  # fmt: skip


@pytest.fixture
def server() -> Iterator[PolicyServer]:
    running = serve(LinearPolicy(), "127.0.0.1:0")
    yield running
    running.stop(grace=0)


@pytest.fixture
def stub(server: PolicyServer) -> Iterator[pb_grpc.PolicyServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.PolicyServiceStub(channel)


def open_session(stub: pb_grpc.PolicyServiceStub) -> str:
    reply = stub.OpenSession(open_request(LinearPolicy().spec()), timeout=TIMEOUT)
    assert reply.accepted, reply.errors
    return reply.session_id


def act(stub: pb_grpc.PolicyServiceStub, session: str, step: int, obs: Any = None) -> Any:
    request = pb.ActRequest(session_id=session, step=step, observation=obs or good_observation())
    return stub.Act(request, timeout=TIMEOUT)


def rejected(call: Callable[[], Any], code: grpc.StatusCode, *fragments: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details()
    return str(info.value.details())


@pytest.mark.parametrize(
    ("observation", "code", "fragments"),
    [c[1:] for c in BAD_TENSORS],
    ids=[c[0] for c in BAD_TENSORS],
)
def test_bad_tensors_are_named_and_the_server_keeps_serving(
    stub: pb_grpc.PolicyServiceStub, observation: Any, code: grpc.StatusCode, fragments: list[str]
) -> None:
    session = open_session(stub)
    rejected(lambda: act(stub, session, 0, observation), code, "Act: ", *fragments)
    assert act(stub, session, 1).action.shape == [4]  # same session, next step: served


def test_bad_tensors_in_a_stream_fail_in_band_and_the_stream_survives(
    stub: pb_grpc.PolicyServiceStub,
) -> None:
    session = open_session(stub)
    requests = [pb.ActRequest(session_id=session, step=i, observation=obs)
                for i, (_, obs, _, _) in enumerate(BAD_TENSORS)]  # fmt: skip
    requests.append(pb.ActRequest(session_id=session, step=len(requests),
                                  observation=good_observation()))  # fmt: skip
    replies = list(stub.ActStream(iter(requests), timeout=TIMEOUT))
    assert len(replies) == len(requests)
    for reply, (name, _, code, fragments) in zip(replies, BAD_TENSORS, strict=False):
        assert reply.status.code == code.value[0], name
        assert all(f in reply.status.message for f in fragments), (name, reply.status.message)
        assert reply.status.errors and reply.status.errors[0].field.startswith("observation.ee_pos")
    assert replies[-1].status.code == 0 and replies[-1].action.shape == [4]


def test_an_absurd_shape_is_refused_before_anything_is_allocated(
    stub: pb_grpc.PolicyServiceStub,
) -> None:
    session = open_session(stub)
    # 2**28 float64 elements would be 2 GiB; the message carries 8 bytes.
    observation = with_ee_pos(dtype=pb.DTYPE_FLOAT64, shape=[1 << 14, 1 << 14], data=b"\0" * 8)
    tracemalloc.start()
    try:
        rejected(lambda: act(stub, session, 0, observation), INVALID, "expected 2147483648 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while refusing the tensor"


def test_wrong_session_ids_are_not_found(stub: pb_grpc.PolicyServiceStub) -> None:
    for session in ("", "no-such-session", "x" * 20_000, "\u2603"):
        rejected(lambda s=session: act(stub, s, 0), NOT_FOUND, "Act: session_id", "not open")
        request = pb.ResetSessionRequest(session_id=session)
        rejected(lambda r=request: stub.ResetSession(r, timeout=TIMEOUT), NOT_FOUND, "ResetSession")
    long = "x" * 20_000  # echoed whole, the details would overflow gRPC's metadata limit
    rejected(lambda: act(stub, long, 0), NOT_FOUND, "... (20000 chars) is not open")
    replies = list(
        stub.ActStream(iter([pb.ActRequest(session_id="ghost", step=0)]), timeout=TIMEOUT)
    )
    assert replies[0].status.code == NOT_FOUND.value[0] and "ghost" in replies[0].status.message
    stub.CloseSession(pb.CloseSessionRequest(session_id="ghost"), timeout=TIMEOUT)  # idempotent
    assert act(stub, open_session(stub), 0).action.shape == [4]


def test_steps_out_of_order_are_failed_precondition(stub: pb_grpc.PolicyServiceStub) -> None:
    session = open_session(stub)
    first = act(stub, session, 5)
    assert act(stub, session, 5) == first  # the same step again: the cached reply
    for step in (4, 0, -1, -(1 << 62)):
        rejected(lambda s=step: act(stub, session, s), FAILED_PRECONDITION,
                 "Act: step: expected > 5 (or 5 to replay)", f"got {step}")  # fmt: skip
    assert act(stub, session, 1 << 62).action.shape == [4]  # a gap is fine


def test_a_batch_reports_each_bad_item_in_band(stub: pb_grpc.PolicyServiceStub) -> None:
    good, stale, twice = open_session(stub), open_session(stub), open_session(stub)
    act(stub, stale, 3)
    bad = with_ee_pos(dtype=F32, shape=[3], data=b"\0" * 5)
    items = [
        pb.ActRequest(session_id=good, step=0, observation=good_observation()),
        pb.ActRequest(session_id=stale, step=1, observation=good_observation()),  # out of order
        pb.ActRequest(session_id=twice, step=0, observation=bad),  # bad tensor
        pb.ActRequest(session_id=twice, step=1, observation=good_observation()),  # same session
    ]
    reply = stub.ActBatch(pb.ActBatchRequest(items=items), timeout=TIMEOUT)
    codes = [item.status.code for item in reply.items]
    assert codes == [0, FAILED_PRECONDITION.value[0], INVALID.value[0], INVALID.value[0]]
    messages = [item.status.message for item in reply.items]
    assert "ActBatch: step: expected > 3" in messages[1]
    assert "observation.ee_pos.data" in messages[2]
    assert "session_id: expected each session once" in messages[3]


def test_bytes_that_are_not_a_message_are_refused(server: PolicyServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary("/testbed.policy.v1.PolicyService/Act")  # bytes in, bytes out
        for junk in (b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f", b"\x12" * 9):
            with pytest.raises(grpc.RpcError) as info:
                raw(junk, timeout=TIMEOUT)
            assert info.value.code() in (grpc.StatusCode.INTERNAL, INVALID)
        unknown = channel.unary_unary("/testbed.policy.v1.PolicyService/Explode")
        with pytest.raises(grpc.RpcError) as info:
            unknown(b"", timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        stub = pb_grpc.PolicyServiceStub(channel)
        assert act(stub, open_session(stub), 0).action.shape == [4]


def test_oversized_requests_are_resource_exhausted_and_the_server_keeps_serving() -> None:
    server = serve(LinearPolicy(), "127.0.0.1:0", max_message_bytes=64 * 1024)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.PolicyServiceStub(channel)
            session = open_session(stub)
            observation = good_observation()
            observation["padding"] = to_tensor(np.zeros(100_000, np.uint8))
            rejected(lambda: act(stub, session, 0, observation),
                     grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max")  # fmt: skip
            assert act(stub, session, 1).action.shape == [4]
    finally:
        server.stop(grace=0)


# --------------------------------------------------------------- server -> client (lying server)


class LyingServicer(pb_grpc.PolicyServiceServicer):
    """A policy server that shakes hands properly, then answers Act with `reply`."""

    def __init__(self) -> None:
        self.spec = spec_to_proto(LinearPolicy().spec())
        self.reply: Callable[[pb.ActRequest], pb.ActResponse] = lambda r: pb.ActResponse()

    def GetSpec(self, request: Any, context: Any) -> pb.PolicySpec:
        return self.spec

    def OpenSession(self, request: Any, context: Any) -> pb.OpenSessionResponse:
        return pb.OpenSessionResponse(accepted=True, session_id="s1", spec=self.spec)

    def Act(self, request: pb.ActRequest, context: Any) -> pb.ActResponse:
        return self.reply(request)

    def ActStream(self, requests: Iterator[pb.ActRequest], context: Any) -> Iterator[Any]:
        for request in requests:
            yield self.reply(request)


@pytest.fixture
def liar() -> Iterator[tuple[LyingServicer, str]]:
    from concurrent import futures

    servicer = LyingServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", 64 << 20)])  # fmt: skip
    pb_grpc.add_PolicyServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


def action(**fields: Any) -> Callable[[pb.ActRequest], pb.ActResponse]:
    return lambda r: pb.ActResponse(
        session_id=r.session_id, step=r.step, action=pb.Tensor(**fields)
    )


LIES = [
    ("no-action", lambda r: pb.ActResponse(session_id=r.session_id, step=r.step),
     PolicyProtocolError, "action.dtype: expected a known DType, got 0"),
    ("short-bytes", action(dtype=F32, shape=[4], data=b"\0" * 15), PolicyProtocolError,
     "action.data: expected 16 bytes for float32[4], got 15"),
    ("unknown-dtype", action(dtype=42, shape=[4], data=b"\0" * 16), PolicyProtocolError,
     "got 42"),
    ("absurd-shape", action(dtype=F32, shape=[1 << 30, 1 << 30], data=b""), PolicyProtocolError,
     "action.shape"),
    ("rank-9", action(dtype=F32, shape=[1] * 9, data=b"\0" * 4), PolicyProtocolError,
     "at most 8 dimensions"),
    ("nan", action(dtype=F32, shape=[4], data=np.array([0, np.nan, 0, 0], "<f4").tobytes()),
     InvalidActionError, "non-finite"),
    ("out-of-bounds", action(dtype=F32, shape=[4], data=np.array([0, 9, 0, 0], "<f4").tobytes()),
     InvalidActionError, "out-of-bounds"),
    ("wrong-shape", action(dtype=F32, shape=[3], data=b"\0" * 12), InvalidActionError, "shape"),
    ("float64-for-float32",
     action(dtype=pb.DTYPE_FLOAT64, shape=[4], data=np.array([0, 1e300, 0, 0], "<f8").tobytes()),
     InvalidActionError, "(dtype): action.dtype: expected float32, got float64"),  # never cast
    ("oversized", action(dtype=pb.DTYPE_UINT8, shape=[20 << 20], data=b"\0" * (20 << 20)),
     PolicyError, "RESOURCE_EXHAUSTED"),
]  # fmt: skip


@pytest.mark.parametrize("mode", ["unary", "stream"])
@pytest.mark.parametrize(("reply", "error", "fragment"), [c[1:] for c in LIES],
                         ids=[c[0] for c in LIES])  # fmt: skip
def test_malformed_replies_become_typed_errors(
    liar: tuple[LyingServicer, str], mode: str, reply: Any, error: type, fragment: str
) -> None:
    servicer, address = liar
    servicer.reply = reply
    session = SessionInfo("s", "kr-changwon", "c", 0, 1)
    observation = sample_observation(np.random.default_rng(1))
    with RemotePolicy(address, observation_space=observation_space(), action_space=action_space(),
                      mode=mode, deadline_s=TIMEOUT) as client:  # type: ignore[arg-type]  # fmt: skip
        client.reset(session)
        with pytest.raises(error) as info:
            client.act(session, observation)
        assert fragment in str(info.value)
        servicer.reply = action(dtype=F32, shape=[4], data=b"\0" * 16)  # the liar mends its ways
        assert client.act(session, observation).shape == (4,)


def test_a_reply_for_another_step_or_session_is_never_taken_as_the_answer(
    liar: tuple[LyingServicer, str],
) -> None:
    servicer, address = liar
    good = np.zeros(4, "<f4").tobytes()
    tensor = pb.Tensor(dtype=F32, shape=[4], data=good)
    servicer.reply = lambda r: pb.ActResponse(session_id="other", step=r.step + 7, action=tensor)
    session = SessionInfo("s", "kr-changwon", "c", 0, 1)
    with RemotePolicy(address, observation_space=observation_space(), action_space=action_space(),
                      mode="stream", deadline_s=0.3) as client:  # fmt: skip
        client.reset(session)
        with pytest.raises(PolicyError, match="no answer within 300 ms"):
            client.act(session, sample_observation(np.random.default_rng(2)))


@pytest.fixture
def junk_server() -> Iterator[str]:
    """Shakes hands properly, then answers Act and ActStream with bytes that are no message."""
    from concurrent import futures

    spec = spec_to_proto(LinearPolicy().spec())
    opened = pb.OpenSessionResponse(accepted=True, session_id="s", spec=spec).SerializeToString()
    raw = {"request_deserializer": None, "response_serializer": None}
    methods = {
        "GetSpec": grpc.unary_unary_rpc_method_handler(
            lambda r, c: spec.SerializeToString(), **raw
        ),
        "OpenSession": grpc.unary_unary_rpc_method_handler(lambda r, c: opened, **raw),
        "Act": grpc.unary_unary_rpc_method_handler(lambda r, c: b"\xff\xff\xff", **raw),
        "ActStream": grpc.stream_stream_rpc_method_handler(
            lambda requests, c: (b"\xff\xff\xff" for _ in requests), **raw
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service = grpc.method_handlers_generic_handler("testbed.policy.v1.PolicyService", methods)
    server.add_generic_rpc_handlers([service])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_a_reply_that_is_not_a_message_is_a_protocol_error(junk_server: str, mode: str) -> None:
    session = SessionInfo("s", "kr-changwon", "c", 0, 1)
    with RemotePolicy(junk_server, observation_space=observation_space(),
                      action_space=action_space(), mode=mode) as client:  # type: ignore[arg-type]  # fmt: skip
        client.reset(session)
        with pytest.raises(PolicyProtocolError, match="malformed reply"):
            client.act(session, sample_observation(np.random.default_rng(3)))
