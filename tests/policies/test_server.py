from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from policies.protocol import Policy
from policies.server import PolicyServer, TlsConfig, serve
from protos.tensors import to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from tests.certs import make_pki
from tests.policies.compliance import TIMEOUT, open_request
from tests.policies.doubles import (
    BadActionPolicy,
    BatchingPolicy,
    GatedWarmupPolicy,
    LinearPolicy,
    RaisingPolicy,
    SlowPolicy,
    sample_observation,
)

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _observation(seed: int = 0) -> dict[str, pb.Tensor]:
    return {n: to_tensor(v) for n, v in sample_observation(np.random.default_rng(seed)).items()}


def _open(stub: pb_grpc.PolicyServiceStub, policy: Policy, site: str = "", **kw: object) -> str:
    request = open_request(policy.spec())
    request.site = site
    reply = stub.OpenSession(request, timeout=TIMEOUT, **kw)
    assert reply.accepted, reply.errors
    return reply.session_id


@pytest.fixture
def running() -> object:
    servers: list[PolicyServer] = []

    def start(policy: Policy, **kw: object) -> PolicyServer:
        server = serve(policy, "127.0.0.1:0", **kw)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


def test_health_not_serving_until_warm_then_serving_then_not_serving_on_shutdown(
    running: object,
) -> None:
    policy = GatedWarmupPolicy()
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="testbed.policy.v1.PolicyService")
        assert health.Check(request, timeout=TIMEOUT).status == NOT_SERVING
        watch = health.Watch(request, timeout=TIMEOUT)
        assert next(watch).status == NOT_SERVING
        policy.gate.set()
        assert next(watch).status == SERVING
        stopper = threading.Thread(target=server.stop, args=(1.0,))
        stopper.start()
        assert next(watch).status == NOT_SERVING
        stopper.join(TIMEOUT)


def test_token_checked_and_never_echoed(running: object) -> None:
    server = running(LinearPolicy(), token="team-a-secret")  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        for metadata in (None, (("authorization", "Bearer wrong-token"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "wrong-token" not in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ActStream(iter([pb.ActRequest()]), timeout=TIMEOUT))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", "Bearer team-a-secret"),)
        assert stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT, metadata=good).policy_id
        health = health_pb2_grpc.HealthStub(channel)  # load balancers probe without a token
        health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)


def test_tls_and_mutual_tls(running: object) -> None:
    pki = make_pki()
    tls = running(LinearPolicy(), tls=TlsConfig(pki.server_cert, pki.server_key))  # type: ignore[operator]
    with grpc.secure_channel(tls.address, grpc.ssl_channel_credentials(pki.ca)) as channel:
        assert pb_grpc.PolicyServiceStub(channel).GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT)
    with grpc.insecure_channel(tls.address) as channel, pytest.raises(grpc.RpcError):
        pb_grpc.PolicyServiceStub(channel).GetSpec(pb.GetSpecRequest(), timeout=1.0)
    mutual = running(  # type: ignore[operator]
        LinearPolicy(), tls=TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    )
    anonymous = grpc.ssl_channel_credentials(pki.ca)
    with grpc.secure_channel(mutual.address, anonymous) as channel, pytest.raises(grpc.RpcError):
        pb_grpc.PolicyServiceStub(channel).GetSpec(pb.GetSpecRequest(), timeout=1.0)
    with_cert = grpc.ssl_channel_credentials(pki.ca, pki.client_key, pki.client_cert)
    with grpc.secure_channel(mutual.address, with_cert) as channel:
        assert pb_grpc.PolicyServiceStub(channel).GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT)


def _reflected_services(address: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT))
        return [s.name for s in reply.list_services_response.service]


# grpc.reflection.v1 as upstream gRPC defines it (grpc-proto, grpc/reflection/v1), without the
# comments: a client of the v1 protocol written without grpcio-reflection.
REFLECTION_V1_PROTO = """
syntax = "proto3";
package grpc.reflection.v1;
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest)
      returns (stream ServerReflectionResponse);
}
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    ExtensionRequest file_containing_extension = 5;
    string all_extension_numbers_of_type = 6;
    string list_services = 7;
  }
}
message ExtensionRequest { string containing_type = 1; int32 extension_number = 2; }
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ExtensionNumberResponse all_extension_numbers_response = 5;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ExtensionNumberResponse { string base_type_name = 1; repeated int32 extension_number = 2; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ServiceResponse { string name = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
"""


def _v1_reflection(address: str, tmp_path: Path, *requests: dict[str, str]) -> list[Any]:
    """Ask the v1 service with message classes compiled from the upstream v1 schema."""
    from grpc_tools import protoc

    source, out = tmp_path / "reflection.proto", tmp_path / "reflection.pb"
    source.write_text(REFLECTION_V1_PROTO)
    assert protoc.main(["protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}", str(source)]) == 0
    (file,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    pool = descriptor_pool.DescriptorPool()  # apart from the process's default pool
    pool.AddSerializedFile(file.SerializeToString())
    request_class, response_class = (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{name}"))
        for name in ("ServerReflectionRequest", "ServerReflectionResponse")
    )
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return list(call(iter([request_class(**r) for r in requests]), timeout=TIMEOUT))


def test_reflection_is_switchable(running: object) -> None:
    on = running(LinearPolicy())  # type: ignore[operator]
    assert "testbed.policy.v1.PolicyService" in _reflected_services(on.address)
    off = running(LinearPolicy(), reflection=False)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as info:
        _reflected_services(off.address)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_reflection_v1_is_served_beside_v1alpha(running: object, tmp_path: Path) -> None:
    server = running(LinearPolicy())  # type: ignore[operator]
    listed, policy_file, v1_file = _v1_reflection(
        server.address,
        tmp_path,
        {"list_services": ""},
        {"file_containing_symbol": "testbed.policy.v1.PolicyService"},
        {"file_containing_symbol": "grpc.reflection.v1.ServerReflection"},
    )
    names = sorted(s.name for s in listed.list_services_response.service)
    assert names == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "testbed.policy.v1.PolicyService",
    ]
    assert _reflected_services(server.address) == names  # v1alpha lists the same
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in policy_file.file_descriptor_response.file_descriptor_proto
    ]
    ours = next(f for f in files if f.package == "testbed.policy.v1")
    assert [m.name for m in ours.service[0].method][:2] == ["GetSpec", "OpenSession"]
    assert {f.name for f in files} >= {ours.name, "google/protobuf/timestamp.proto"}
    (raw,) = v1_file.file_descriptor_response.file_descriptor_proto
    v1 = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    method = v1.service[0].method[0]
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    off = running(LinearPolicy(), reflection=False)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as info:
        _v1_reflection(off.address, tmp_path, {"list_services": ""})
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_policy_exception_is_internal_and_server_keeps_serving(running: object) -> None:
    policy = RaisingPolicy()
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        session = _open(stub, policy)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(pb.ActRequest(session_id=session, observation=_observation()), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "model exploded" in info.value.details()
        replies = list(
            stub.ActStream(iter([pb.ActRequest(session_id=session, observation=_observation())]))
        )
        assert replies[0].status.code == grpc.StatusCode.INTERNAL.value[0]
        assert stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT).policy_id == "linear"


@pytest.mark.parametrize("policy_class", [LinearPolicy, BatchingPolicy])
def test_batch_uses_act_batch_or_falls_back_to_act(running: object, policy_class: type) -> None:
    policy = policy_class()
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        sessions = [_open(stub, policy) for _ in range(4)]
        items = [
            pb.ActRequest(session_id=s, observation=_observation(i)) for i, s in enumerate(sessions)
        ]
        items.insert(2, pb.ActRequest(session_id="unknown", observation=_observation()))
        reply = stub.ActBatch(pb.ActBatchRequest(items=items), timeout=TIMEOUT)
    codes = [item.status.code for item in reply.items]
    assert codes == [0, 0, grpc.StatusCode.NOT_FOUND.value[0], 0, 0]
    assert "unknown" in reply.items[2].status.message
    if policy_class is BatchingPolicy:
        assert policy.batch_calls == 1 and policy.calls == 4  # act_batch calls act per item
    else:
        assert policy.calls == 4


def test_batch_larger_than_max_batch_is_invalid_argument(running: object) -> None:
    policy = LinearPolicy()
    server = running(policy)  # type: ignore[operator]
    too_many = policy.spec().capabilities.max_batch + 1
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ActBatch(pb.ActBatchRequest(items=[pb.ActRequest()] * too_many), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items" in info.value.details()


BAD_ACTIONS = [
    ("nan", "action", "finite values", "nan at element (1,)"),
    ("inf", "action", "finite values", "-inf at element (3,)"),
    ("shape", "action.shape", "[4]", "[3]"),
    ("chunk", "action.shape", "[4]", "[2, 4]"),  # chunks it did not announce
    ("bounds", "action", "<= 1.0 (the spec's action bounds)", "2.5 at element (1,)"),
    ("low", "action", ">= -1.0 (the spec's action bounds)", "-1.5 at element (0,)"),
    ("dtype", "action.dtype", "float32", np.array(["a"]).dtype.name),
    ("float64", "action.dtype", "float32", "float64"),  # refused, never cast
]


@pytest.mark.parametrize(("kind", "field", "expected", "got"), [c for c in BAD_ACTIONS],
                         ids=[c[0] for c in BAD_ACTIONS])  # fmt: skip
def test_an_action_outside_the_policys_own_spec_is_internal_naming_policy_and_field(
    running: object, kind: str, field: str, expected: str, got: str
) -> None:
    policy = BadActionPolicy(kind)
    server = running(policy)  # type: ignore[operator]
    text = f"policy 'linear' returned a bad action: {field}: expected {expected}, got {got}"
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        session = _open(stub, policy)
        request = pb.ActRequest(session_id=session, step=0, observation=_observation())
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(request, timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert info.value.details() == f"Act: {text}"
        streamed = next(stub.ActStream(iter([request]), timeout=TIMEOUT))  # step 0 not used up
        batched = stub.ActBatch(pb.ActBatchRequest(items=[request]), timeout=TIMEOUT).items[0]
    for reply, rpc in ((streamed, "ActStream"), (batched, "ActBatch")):
        assert reply.status.code == grpc.StatusCode.INTERNAL.value[0]
        assert reply.status.message == f"{rpc}: {text}"
        assert [(e.field, e.expected, e.got) for e in reply.status.errors] == [
            (field, expected, got)
        ]
        assert not reply.HasField("action")
    assert policy.calls == 3  # each try ran the policy: a failed step is not used up


def test_a_list_of_python_numbers_is_a_fine_action(running: object) -> None:
    policy = BadActionPolicy("list")
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        session = _open(stub, policy)
        request = pb.ActRequest(session_id=session, step=0, observation=_observation())
        reply = stub.Act(request, timeout=TIMEOUT)
    assert reply.action.dtype == pb.DTYPE_FLOAT32
    assert np.frombuffer(reply.action.data, "<f4").tolist() == [0.0, 0.5, -0.5, 1.0]


def test_respond_by_rules(running: object) -> None:
    policy = SlowPolicy(delay_s=0.3, only_site="slow")
    server = running(policy)  # type: ignore[operator]
    deadline = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        fast, slow = _open(stub, policy, "fast"), _open(stub, policy, "slow")
        expired = pb.ActRequest(session_id=fast, step=0, observation=_observation(), budget_ms=0)
        replies = list(stub.ActStream(iter([expired]), timeout=TIMEOUT))
        assert [r.status.code for r in replies] == [deadline] and policy.calls == 0
        assert "respond_by passed on arrival" in replies[0].status.message
        past = pb.ActRequest(session_id=fast, step=0, observation=_observation())
        past.deadline.FromNanoseconds(time.time_ns() - 1_000_000)
        unset = pb.ActRequest(session_id=fast, step=0, observation=_observation())
        replies = list(stub.ActStream(iter([past, unset]), timeout=TIMEOUT))
        # Neither ran the policy nor used step 0 up; without respond_by there is no deadline.
        assert [r.status.code for r in replies] == [deadline, 0] and policy.calls == 1
        late = pb.ActRequest(session_id=slow, step=0, observation=_observation(), budget_ms=20)
        retry = pb.ActRequest(session_id=slow, step=0, observation=_observation())
        slow_unset = pb.ActRequest(session_id=slow, step=1, observation=_observation())
        replies = list(stub.ActStream(iter([late, retry, slow_unset]), timeout=TIMEOUT))
    assert [r.status.code for r in replies] == [deadline, 0, 0]
    assert "respond_by passed during act" in replies[0].status.message
    assert not replies[0].HasField("action") and replies[1].HasField("action")
    assert policy.calls == 3  # the late step was answered: its retry came from the cache


def test_stream_respond_by_is_honoured_in_band(running: object) -> None:
    policy = SlowPolicy(delay_s=0.2, only_site="slow")
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        fast, slow = _open(stub, policy, "fast"), _open(stub, policy, "slow")
        expired = pb.ActRequest(session_id=fast, step=0, observation=_observation(), budget_ms=0)
        late = pb.ActRequest(session_id=slow, step=0, observation=_observation(), budget_ms=20)
        ok = pb.ActRequest(session_id=fast, step=1, observation=_observation())
        ok.deadline.FromNanoseconds(time.time_ns() + 5_000_000_000)
        replies = list(stub.ActStream(iter([expired, late, ok]), timeout=TIMEOUT))
    deadline = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert [r.status.code for r in replies] == [deadline, deadline, 0]
    assert "respond_by" in replies[0].status.message


def test_slow_session_does_not_stall_other_sessions(running: object) -> None:
    policy = SlowPolicy(delay_s=10.0, only_site="slow")
    server = running(policy)  # type: ignore[operator]
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        fast, slow = _open(stub, policy, "fast"), _open(stub, policy, "slow")
        pending = stub.Act.future(
            pb.ActRequest(session_id=slow, observation=_observation()), timeout=TIMEOUT
        )
        start = time.monotonic()
        for step in range(5):
            stub.Act(
                pb.ActRequest(session_id=fast, step=step, observation=_observation()),
                timeout=TIMEOUT,
            )
        assert time.monotonic() - start < 1.0 and not pending.done()
        policy.release.set()
        assert pending.result(timeout=TIMEOUT).status.code == 0


def test_oversized_message_rejected_and_busy_port_refused(running: object) -> None:
    server = running(LinearPolicy(), max_message_bytes=4096)  # type: ignore[operator]
    observation = _observation()
    observation["padding"] = to_tensor(np.zeros(2048, np.float32))
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(pb.ActRequest(session_id="x", observation=observation), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(OSError, match="cannot bind"):
        serve(LinearPolicy(), server.address)


PROTO_ONLY_CLIENT = """
import json, math, struct, sys
import grpc
import policy_service_pb2 as pb, policy_service_pb2_grpc as pb_grpc

stub = pb_grpc.PolicyServiceStub(grpc.insecure_channel(sys.argv[1]))
spec = stub.GetSpec(pb.GetSpecRequest(), timeout=5)
opened = stub.OpenSession(pb.OpenSessionRequest(observation=list(spec.observation),
    action=spec.action, protocol_version="1", seed=3), timeout=5)
obs = {}
for field in spec.observation:
    n = math.prod(field.shape)
    obs[field.name] = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=field.shape,
                                data=struct.pack(f"<{n}f", *[0.25] * n))
reply = stub.Act(pb.ActRequest(session_id=opened.session_id, step=0, observation=obs), timeout=5)
action = struct.unpack(f"<{len(reply.action.data) // 4}f", reply.action.data)
ok = reply.HasField("status") and reply.status.code == 0
obs["ee_pos"].data = b"short"
try:
    stub.Act(pb.ActRequest(session_id=opened.session_id, step=1, observation=obs), timeout=5)
    bad = "accepted"
except grpc.RpcError as exc:
    bad = f"{exc.code().name} {exc.details()}"
assert not any(m.startswith(("protos", "policies", "testbed")) for m in sys.modules)
print(json.dumps({"accepted": opened.accepted, "warnings": list(opened.warnings),
                  "shape": list(reply.action.shape), "action": action, "ok": ok, "bad": bad}))
"""


def test_client_built_only_from_the_proto(running: object, tmp_path: Path) -> None:
    from grpc_tools import protoc

    shutil.copy(REPO / "protos/v1/policy_service.proto", tmp_path)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{tmp_path}",
        f"-I{well_known}",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(tmp_path / "policy_service.proto"),
    ]
    assert protoc.main(args) == 0
    (tmp_path / "client.py").write_text(PROTO_ONLY_CLIENT)
    server = running(LinearPolicy())  # type: ignore[operator]
    done = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), server.address],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["accepted"] and result["shape"] == [4]
    assert result["warnings"] == [  # "1" reads as "1.0", a minor below the server's 1.1
        "protocol minor version differs: server 1.1, client 1",
        "capabilities not sent: read as streaming = false, batching = false, "
        "action_chunking = false, max_batch = 0, packed_observations = false, "
        "image_encodings = [] (send them to have a mismatch reported here)",
    ]
    assert result["action"] == pytest.approx([0.125, 0.125, 0.125, 0.125])
    assert result["ok"]  # an OK status is on the wire, not absent
    assert (
        result["bad"] == "INVALID_ARGUMENT Act: observation.ee_pos.data: expected 12 bytes "
        "for float32[3], got 5"
    )
