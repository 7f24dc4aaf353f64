"""The SDK server's packed observations (protocol 1.1), and a 1.0 client against it.

A policy with mixed dtypes (bool, float32, int64, uint8, float64) is served; packed and named
steps must reach it as the same arrays, and every malformed packed request gets the documented
error. Two clients built only from a .proto run in a subprocess: a 1.1 client packing by the
offsets the server states, and a 1.0 client (the released 1.0 .proto) that knows nothing of
packing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

import grpc
import numpy as np
import pytest

from policies.protocol import Capabilities, FieldSpec, PolicySpec, SessionInfo
from policies.server import PolicyServer, serve
from protos.packed import PackedEncoder, PackedLayout
from protos.specs import PROTOCOL_VERSION, field_to_proto
from protos.tensors import from_tensor, to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from tests.protos.test_packed import MIXED
from tests.protos.v1_0 import generate_python

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0


class MixedPolicy:
    """Deterministic over every field, so a field decoded wrongly changes the action."""

    def spec(self) -> PolicySpec:
        action = FieldSpec((4,), "float32", -1e6, 1e6)
        return PolicySpec("mixed", "1", MIXED, action, Capabilities(max_batch=8))

    def reset(self, session: SessionInfo) -> None:
        """Stateless."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        o = observation
        return np.array(
            [float(o["flag"]) + float(o["pose"].sum()), float(o["count"][0] % 1000),
             float(o["image"].astype(np.int64).sum()), float(o["grid"].sum())], np.float32,
        )  # fmt: skip


def values(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "flag": np.array(seed % 2 == 0),
        "pose": rng.uniform(-1, 1, 3).astype(np.float32),
        "count": np.array([2**53 + seed], np.int64),
        "image": rng.integers(0, 255, (2, 3)).astype(np.uint8),
        "grid": rng.uniform(-1, 1, (2, 2)),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[PolicyServer]:
    running = serve(MixedPolicy(), "127.0.0.1:0")  # type: ignore[arg-type]
    assert running.wait_until_serving(TIMEOUT)
    yield running
    running.stop(grace=0)


@pytest.fixture
def stub(server: PolicyServer) -> Iterator[pb_grpc.PolicyServiceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.PolicyServiceStub(channel)


def _open(stub: pb_grpc.PolicyServiceStub, packed: bool) -> pb.OpenSessionResponse:
    request = pb.OpenSessionRequest(
        observation=[field_to_proto(n, f) for n, f in MIXED.items()],
        action=field_to_proto("action", MixedPolicy().spec().action),
        protocol_version=PROTOCOL_VERSION,
        capabilities=pb.Capabilities(streaming=True, batching=True, packed_observations=packed),
    )
    reply = stub.OpenSession(request, timeout=TIMEOUT)
    assert reply.accepted and not reply.warnings, (reply.errors, reply.warnings)
    return reply


def _packed(session: str, step: int, data: bytes) -> pb.ActRequest:
    return pb.ActRequest(session_id=session, step=step, packed_observation=data)


def _named(session: str, step: int, seed: int) -> pb.ActRequest:
    observation = {n: to_tensor(np.asarray(v, MIXED[n].dtype)) for n, v in values(seed).items()}
    return pb.ActRequest(session_id=session, step=step, observation=observation)


def test_the_layout_is_stated_at_open_only_when_asked(stub: pb_grpc.PolicyServiceStub) -> None:
    assert not _open(stub, packed=False).HasField("packed_layout")
    reply = _open(stub, packed=True)
    assert reply.packed_layout == PackedLayout.for_fields(MIXED).to_proto()
    assert stub.GetSpec(pb.GetSpecRequest(), timeout=TIMEOUT).capabilities.packed_observations


def test_packed_steps_reach_the_policy_as_the_named_ones(stub: pb_grpc.PolicyServiceStub) -> None:
    packed_reply = _open(stub, packed=True)
    packed, named = packed_reply.session_id, _open(stub, packed=False).session_id
    encode = PackedEncoder(PackedLayout.from_proto(packed_reply.packed_layout, MIXED))
    policy = MixedPolicy()
    session = SessionInfo("x")
    got: dict[str, list[np.ndarray]] = {"packed": [], "named": []}
    for step in range(3):
        data = encode(values(step))
        requests = {"packed": _packed(packed, step, data), "named": _named(named, step, step)}
        for form, request in requests.items():
            if step == 0:
                reply = stub.Act(request, timeout=TIMEOUT)
            elif step == 1:
                (reply,) = stub.ActStream(iter([request]), timeout=TIMEOUT)
            else:
                (reply,) = stub.ActBatch(pb.ActBatchRequest(items=[request]), timeout=TIMEOUT).items
            assert reply.status.code == 0, (form, step, reply.status)
            got[form].append(from_tensor(reply.action, "action"))
        assert np.array_equal(got["packed"][-1], policy.act(session, values(step)))
    assert all(np.array_equal(a, b) for a, b in zip(got["packed"], got["named"], strict=True))


def test_bad_packed_requests_get_the_documented_errors(stub: pb_grpc.PolicyServiceStub) -> None:
    reply = _open(stub, packed=True)
    session, size = reply.session_id, reply.packed_layout.size
    encode = PackedEncoder(PackedLayout.from_proto(reply.packed_layout, MIXED))
    good = encode(values(0))

    def refused(request: pb.ActRequest) -> tuple[str, str]:
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(request, timeout=TIMEOUT)
        return info.value.code().name, info.value.details()

    assert refused(_packed(session, 0, good[:-1])) == (
        "INVALID_ARGUMENT",
        f"Act: packed_observation: expected {size} bytes (the session's packed layout), "
        f"got {size - 1}",
    )
    flag = bytearray(good)
    flag[0] = 2
    assert refused(_packed(session, 0, bytes(flag))) == (
        "INVALID_ARGUMENT",
        "Act: observation.flag.data: expected bool bytes of 0 or 1, got a byte of 2",
    )
    both = _named(session, 0, 0)
    both.packed_observation = good
    assert refused(both) == (
        "INVALID_ARGUMENT",
        f"Act: observation: expected no named fields when packed_observation is set, "
        f"got {len(MIXED)}",
    )
    unasked = _open(stub, packed=False).session_id
    code, details = refused(_packed(unasked, 0, good))
    assert code == "FAILED_PRECONDITION" and details.startswith(
        "Act: packed_observation: expected a session opened with "
        "capabilities.packed_observations = true"
    )
    # In-band on a stream, with the FieldError; the failed step is not used up.
    short, retry = stub.ActStream(
        iter([_packed(session, 0, good[:-1]), _packed(session, 0, good)]), timeout=TIMEOUT
    )
    assert [(e.field, e.got) for e in short.status.errors] == [
        ("packed_observation", f"{size - 1}")
    ]
    assert not short.HasField("action") and retry.status.code == 0
    # A retry: packed bytes replay it; other values name the field that differs.
    assert stub.Act(_packed(session, 0, good), timeout=TIMEOUT) == retry
    other = encode({**values(0), "count": np.array([5], np.int64)})
    code, details = refused(_packed(session, 0, other))
    assert code == "FAILED_PRECONDITION" and "(observation.count differs)" in details


def _generated_client(tmp_path: Path, proto: Path | None, script: str) -> None:
    if proto is None:
        generate_python(tmp_path)  # the 1.0 .proto
    else:
        from grpc_tools import protoc

        shutil.copy(proto, tmp_path / "policy_service.proto")
        well_known = resources.files("grpc_tools") / "_proto"
        target = str(tmp_path / "policy_service.proto")
        args = ["protoc", f"-I{tmp_path}", f"-I{well_known}", f"--python_out={tmp_path}",
                f"--grpc_python_out={tmp_path}", target]  # fmt: skip
        assert protoc.main(args) == 0
    (tmp_path / "client.py").write_text(script)


def _run(tmp_path: Path, address: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, str(tmp_path / "client.py"), address], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, env={"PATH": ""})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


PACKING_CLIENT = """
import json, struct, sys
import grpc
import policy_service_pb2 as pb, policy_service_pb2_grpc as pb_grpc

stub = pb_grpc.PolicyServiceStub(grpc.insecure_channel(sys.argv[1]))
spec = stub.GetSpec(pb.GetSpecRequest(), timeout=5)
assert spec.capabilities.packed_observations
opened = stub.OpenSession(pb.OpenSessionRequest(observation=list(spec.observation),
    action=spec.action, protocol_version="1.1",
    capabilities=pb.Capabilities(packed_observations=True)), timeout=5)
codes = {pb.DTYPE_BOOL: "?", pb.DTYPE_FLOAT32: "f", pb.DTYPE_FLOAT64: "d",
         pb.DTYPE_INT64: "q", pb.DTYPE_UINT8: "B"}
data = bytearray(opened.packed_layout.size)
for field in opened.packed_layout.fields:   # each value at its stated offset, little-endian
    n = 1
    for d in field.shape:
        n *= d
    struct.pack_into(f"<{n}{codes[field.dtype]}", data, field.offset,
                     *([True] if field.dtype == pb.DTYPE_BOOL else [3] * n))
reply = stub.Act(pb.ActRequest(session_id=opened.session_id, step=0,
                               packed_observation=bytes(data)), timeout=5)
action = struct.unpack("<4f", reply.action.data)
assert not any(m.startswith(("protos", "policies", "testbed")) for m in sys.modules)
print(json.dumps({"accepted": opened.accepted, "warnings": list(opened.warnings),
                  "code": reply.status.code, "action": action}))
"""


def test_a_client_built_from_the_proto_packs_by_the_stated_offsets(
    server: PolicyServer, tmp_path: Path
) -> None:
    _generated_client(tmp_path, REPO / "protos/v1/policy_service.proto", PACKING_CLIENT)
    result = _run(tmp_path, server.address)
    assert result["accepted"] and result["code"] == 0 and result["warnings"] == []
    threes = {n: np.full(f.shape, 3, f.dtype) for n, f in MIXED.items()}
    expected = MixedPolicy().act(SessionInfo("x"), {**threes, "flag": np.array(True)})
    assert result["action"] == pytest.approx(expected.tolist())


V1_0_CLIENT = """
import json, math, struct, sys
import grpc
import policy_service_pb2 as pb, policy_service_pb2_grpc as pb_grpc

stub = pb_grpc.PolicyServiceStub(grpc.insecure_channel(sys.argv[1]))
spec = stub.GetSpec(pb.GetSpecRequest(), timeout=5)
assert not hasattr(pb.Capabilities(), "packed_observations")  # the 1.0 schema
opened = stub.OpenSession(pb.OpenSessionRequest(observation=list(spec.observation),
    action=spec.action, protocol_version="1.0",
    capabilities=pb.Capabilities(streaming=True, batching=True, max_batch=2)), timeout=5)
codes = {pb.DTYPE_BOOL: "?", pb.DTYPE_FLOAT32: "f", pb.DTYPE_FLOAT64: "d",
         pb.DTYPE_INT64: "q", pb.DTYPE_UINT8: "B"}
obs = {}
for field in spec.observation:
    n = math.prod(field.shape)
    obs[field.name] = pb.Tensor(dtype=field.dtype, shape=field.shape, data=struct.pack(
        f"<{n}{codes[field.dtype]}", *([True] if field.dtype == pb.DTYPE_BOOL else [3] * n)))
sid = opened.session_id
unary = stub.Act(pb.ActRequest(session_id=sid, step=0, observation=obs), timeout=5)
(streamed,) = stub.ActStream(iter([pb.ActRequest(session_id=sid, step=1, observation=obs)]),
                             timeout=5)
(batched,) = stub.ActBatch(pb.ActBatchRequest(items=[
    pb.ActRequest(session_id=sid, step=2, observation=obs)]), timeout=5).items
print(json.dumps({"accepted": opened.accepted, "warnings": list(opened.warnings),
                  "server": spec.protocol_version,
                  "codes": [r.status.code for r in (unary, streamed, batched)],
                  "actions": [struct.unpack("<4f", r.action.data)
                              for r in (unary, streamed, batched)]}))
"""


def test_a_1_0_client_works_against_the_1_1_server(server: PolicyServer, tmp_path: Path) -> None:
    _generated_client(tmp_path, None, V1_0_CLIENT)
    result = _run(tmp_path, server.address)
    assert result["accepted"] and result["server"] == "1.1"
    assert result["warnings"] == ["protocol minor version differs: server 1.1, client 1.0"]
    assert result["codes"] == [0, 0, 0]
    threes = {n: np.full(f.shape, 3, f.dtype) for n, f in MIXED.items()}
    expected = MixedPolicy().act(SessionInfo("x"), {**threes, "flag": np.array(True)}).tolist()
    assert result["actions"] == [pytest.approx(expected)] * 3
