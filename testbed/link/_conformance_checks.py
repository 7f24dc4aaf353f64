"""The checks of `testbed.link.conformance`, in the order they run (one function each).

Each returns a one-line detail when the server passes, None when the check does not apply
(a capability the server does not advertise), and raises `ConformanceError` naming what the
server did against which promise of docs/policy_service.md.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.actions import ActionCheck, BadAction
from protos.specs import FieldSpec, field_to_proto
from protos.tensors import TensorError, from_tensor
from protos.v1 import policy_service_pb2 as pb
from testbed.link import _conformance_images as images
from testbed.link import _conformance_packed as packed
from testbed.link.conformance import SERVICE, ConformanceError, Probe, code_number, expect

_OK = pb.StepStatus()


def health(probe: Probe) -> str:
    """``grpc.health.v1`` says SERVING for "" and the service, without a token (exempt)."""
    stub = health_pb2_grpc.HealthStub(probe.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    status = {}
    for _ in range(20):  # bounded: a warming server gets about 5 s
        for service in ("", SERVICE):
            request = health_pb2.HealthCheckRequest(service=service)
            status[service] = stub.Check(request, timeout=probe.timeout_s).status
        if all(s == serving for s in status.values()):
            return "SERVING for '' and PolicyService (no token needed)"
        time.sleep(0.25)
    names = {s: health_pb2.HealthCheckResponse.ServingStatus.Name(v) for s, v in status.items()}
    raise ConformanceError(f"health: expected SERVING, got {names}")


def get_spec(probe: Probe) -> str:
    """GetSpec decodes; ``protocol_version`` is MAJOR.MINOR of major 1; batching has max_batch."""
    reply = probe.call("GetSpec", pb.GetSpecRequest())
    version = reply.protocol_version
    expect(
        re.fullmatch(r"[0-9]+\.[0-9]+", version) and version.split(".")[0] == "1",
        f'protocol_version: expected MAJOR.MINOR with major 1 ("1.1"), got {version!r}',
    )
    spec = probe.policy
    caps = spec.capabilities
    expect(
        not caps.batching or caps.max_batch >= 1,
        f"capabilities.max_batch: expected >= 1 with batching, got {caps.max_batch}",
    )
    expect(spec.policy_id, "policy_id: expected a non-empty id, got ''")
    return (
        f"{spec.policy_id} v{spec.version}, protocol {version}, {len(spec.observation)} "
        f"observation fields, action {spec.action.describe()}; streaming={caps.streaming} "
        f"batching={caps.batching} (max {caps.max_batch}) chunking={caps.action_chunking} "
        f"packed={caps.packed_observations}"
    )


def handshake_accepted(probe: Probe) -> str:
    """The env's spaces, this client's protocol and stated capabilities are accepted."""
    reply = probe.call("OpenSession", probe.open_request())
    errors = [f"{e.field}: expected {e.expected}, got {e.got}" for e in reply.errors]
    expect(reply.accepted and not errors, f"OpenSession rejected the env's spaces: {errors}")
    expect(reply.session_id, "OpenSession accepted without a session_id")
    probe.opened.append(reply.session_id)
    return "accepted" + (f" with warnings: {list(reply.warnings)}" if reply.warnings else "")


def handshake_rejected(probe: Probe) -> str:
    """Every mismatch is one FieldError in the reply (gRPC OK), none accepted, no session."""
    first, second = probe.declared()[:2] if len(probe.declared()) >= 2 else (None, None)
    expect(first and second, "needs two observation fields the policy declares")
    request = probe.open_request(protocol_version="2.0")
    kept = [m for m in request.observation if m.name != first]
    del request.observation[:]
    request.observation.extend(kept)
    for message in request.observation:
        if message.name == second:
            message.dtype = pb.DTYPE_UNSPECIFIED
    shape = (math.prod(probe.action.shape) + 3,)
    request.action.CopyFrom(field_to_proto("action", FieldSpec(shape, probe.action.dtype)))
    reply = probe.call("OpenSession", request)
    expect(not reply.accepted and not reply.session_id, "a mismatched handshake was accepted")
    got = sorted((e.field, e.expected, e.got) for e in reply.errors)
    fields = [f for f, _, _ in got]
    wanted = sorted(
        ["protocol_version", f"observation.{first}", f"observation.{second}.dtype", "action.shape"]
    )
    expect(fields == wanted, f"expected one error on each of {wanted}, got {got}")
    missing = next(e for e in got if e[0] == f"observation.{first}")
    expect(missing[2] == "missing", f"observation.{first}: expected got 'missing', got {missing}")
    dtype = next(e for e in got if e[0] == f"observation.{second}.dtype")
    expect(
        dtype[1:] == ("a known DType", "0 (DTYPE_UNSPECIFIED)"),
        f"observation.{second}.dtype: expected ('a known DType', '0 (DTYPE_UNSPECIFIED)'), "
        f"got {dtype[1:]}",
    )
    return f"{len(got)} field errors, one per mismatch"


def protocol_version(probe: Probe) -> str:
    """The server's ``1.m`` accepted silently, another minor with a warning, the rest refused.

    ``1`` reads as ``1.0``: silent for a 1.0 server, a minor warning for a 1.1 server.
    """
    minor = int(probe.call("GetSpec", pb.GetSpecRequest()).protocol_version.split(".")[1])
    same = (f"1.{minor}", f"1.{minor}.3", *(("1",) if minor == 0 else ()))
    for version in same:
        reply = probe.call("OpenSession", probe.open_request(protocol_version=version))
        expect(reply.accepted, f"protocol_version {version!r} rejected: {list(reply.errors)}")
        expect(not reply.warnings, f"protocol_version {version!r} warned: {reply.warnings}")
        probe.opened.append(reply.session_id)
    other = ("1.9" if minor != 9 else "1.8", *(("1",) if minor != 0 else ()))
    for version in other:
        reply = probe.call("OpenSession", probe.open_request(protocol_version=version))
        expect(reply.accepted, f"protocol_version {version!r} (another minor) rejected: "
                               f"{list(reply.errors)}")  # fmt: skip
        expect(any("minor" in w for w in reply.warnings),
               f"protocol_version {version!r}: no minor warning")  # fmt: skip
        probe.opened.append(reply.session_id)
    for version in ("2.0", "0.9", "", "v1", "1.x"):
        reply = probe.call("OpenSession", probe.open_request(protocol_version=version))
        fields = [e.field for e in reply.errors]
        expect(
            not reply.accepted and fields == ["protocol_version"],
            f"protocol_version {version!r}: expected one error on protocol_version, got "
            f"accepted={reply.accepted} errors={fields}",
        )
    return f"{', '.join(same)} accepted; {', '.join(other)} warn; 2.0, 0.9, '', v1, 1.x rejected"


def capabilities(probe: Probe) -> str:
    """Omitted capabilities warn; wanting more than the server offers is a field error."""
    caps = probe.policy.capabilities
    request = probe.open_request()
    request.ClearField("capabilities")
    reply = probe.call("OpenSession", request)
    expect(
        any(w.startswith("capabilities not sent") for w in reply.warnings),
        f"omitted capabilities: expected the warning 'capabilities not sent: ...', got "
        f"{list(reply.warnings)}",
    )
    if reply.accepted:
        probe.opened.append(reply.session_id)
    checked = ["omitted: warned"]
    # A 1.0 server knows no packed_observations (it ignores the field): checked from 1.1 on.
    newer = probe.call("GetSpec", pb.GetSpecRequest()).protocol_version not in ("1.0", "1")
    for name in ("streaming", "batching", *(("packed_observations",) if newer else ())):
        if getattr(caps, name):
            continue
        request = probe.open_request()
        setattr(request.capabilities, name, True)
        reply = probe.call("OpenSession", request)
        fields = [e.field for e in reply.errors]
        expect(
            not reply.accepted and f"capabilities.{name}" in fields,
            f"capabilities.{name} wanted but not offered: expected that field error, got {fields}",
        )
        checked.append(f"{name} refused")
    if caps.batching:
        for wanted, ok in ((caps.max_batch, True), (caps.max_batch + 1, False)):
            request = probe.open_request()
            request.capabilities.batching = True
            request.capabilities.max_batch = wanted
            reply = probe.call("OpenSession", request)
            fields = [e.field for e in reply.errors]
            if ok:
                expect(reply.accepted, f"capabilities.max_batch {wanted} refused: {fields}")
                probe.opened.append(reply.session_id)
            else:
                expect(
                    not reply.accepted and fields == ["capabilities.max_batch"],
                    f"capabilities.max_batch {wanted} (over the server's {caps.max_batch}): "
                    f"expected one error on capabilities.max_batch, got {fields}",
                )
        checked.append(f"max_batch {caps.max_batch} accepted, {caps.max_batch + 1} refused")
    return "; ".join(checked)


def ok_status(probe: Probe) -> str:
    """An OK reply carries an explicit empty StepStatus and the action."""
    session = probe.open()
    reply = probe.call("Act", probe.act(session, 0))
    expect(reply.HasField("status"), "Act: the OK reply has no status (expected an empty one)")
    expect(reply.status == _OK, f"Act: expected an empty status, got {reply.status}")
    expect(reply.HasField("action"), "Act: the OK reply has no action")
    where = ["Act"]
    if probe.policy.capabilities.streaming:
        (streamed,) = probe.stream([probe.act(session, 1)])
        expect(
            streamed.HasField("status") and streamed.status == _OK,
            f"ActStream: expected an explicit empty status, got {streamed}",
        )
        where.append("ActStream")
    if probe.policy.capabilities.batching:
        batch = probe.call("ActBatch", pb.ActBatchRequest(items=[probe.act(session, 2)]))
        expect(
            batch.items[0].HasField("status") and batch.items[0].status == _OK,
            f"ActBatch: expected an explicit empty status, got {batch.items[0]}",
        )
        where.append("ActBatch")
    return f"explicit OK on {', '.join(where)}"


def error_text(probe: Probe) -> str:
    """A malformed tensor: the documented text, the field in-band, no action, step not used."""
    session = probe.open()
    name = probe.declared()[0]
    spec = probe.policy.observation[name]
    size = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
    expected = f"{size} bytes for {spec.describe()}"
    text = f"observation.{name}.data: expected {expected}, got {size + 1}"
    bad = probe.act(session, 0)
    bad.observation[name].data += b"\x00"
    details = probe.fails("Act", bad, grpc.StatusCode.INVALID_ARGUMENT, "a malformed tensor")
    expect(details == f"Act: {text}", f"Act: expected the text 'Act: {text}', got {details!r}")
    if probe.policy.capabilities.streaming:
        reply, retry = probe.stream([bad, probe.act(session, 0)])
        expect(
            reply.status.message == f"ActStream: {text}",
            f"ActStream: expected 'ActStream: {text}', got {reply.status.message!r}",
        )
        errors = [(e.field, e.expected, e.got) for e in reply.status.errors]
        want = [(f"observation.{name}.data", expected, str(size + 1))]
        expect(errors == want, f"ActStream: expected status.errors {want}, got {errors}")
        expect(not reply.HasField("action"), "ActStream: a failed step carries an action")
        expect(retry.status.code == 0, f"the failed step 0 was used up: {retry.status}")
    else:
        probe.call("Act", probe.act(session, 0))  # the failed step is not used up
    return f"'{text}' with the RPC name; the failed step is not used up"


def steps(probe: Probe) -> str:
    """An older step is FAILED_PRECONDITION in the documented words; unknown session NOT_FOUND."""
    session = probe.open()
    for step in (0, 1, 5):
        probe.call("Act", probe.act(session, step, step))
    details = probe.fails(
        "Act", probe.act(session, 4, 4), grpc.StatusCode.FAILED_PRECONDITION, "an older step"
    )
    want = "step: expected > 5 (or 5 to replay), got 4"
    expect(want in details, f"an older step: expected the text '{want}', got {details!r}")
    probe.fails(
        "Act", probe.act("no-such-session", 0), grpc.StatusCode.NOT_FOUND, "an unknown session"
    )
    probe.call("ResetSession", pb.ResetSessionRequest(session_id=session, episode=1, seed=1))
    probe.call("Act", probe.act(session, 0))  # steps restart at 0 after a reset
    probe.call("CloseSession", pb.CloseSessionRequest(session_id=session))
    probe.call("CloseSession", pb.CloseSessionRequest(session_id=session))  # idempotent
    probe.fails("Act", probe.act(session, 1), grpc.StatusCode.NOT_FOUND, "a closed session")
    return "gaps fine, older step refused, reset restarts at 0, closed and unknown NOT_FOUND"


def retry(probe: Probe) -> str:
    """Re-sending a step: same observation -> the cached reply; another -> FAILED_PRECONDITION."""
    session = probe.open()
    first = probe.call("Act", probe.act(session, 0, seed=1))
    again = probe.call("Act", probe.act(session, 0, seed=1))
    expect(
        again.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True),
        "a retry with the same observation got another reply",
    )
    details = probe.fails(
        "Act",
        probe.act(session, 0, seed=2),
        grpc.StatusCode.FAILED_PRECONDITION,
        "a retry with another observation",
    )
    want = "step 0 was already answered for another observation"
    expect(want in details, f"expected the text '...{want}...', got {details!r}")
    if probe.policy.capabilities.streaming:
        (reply,) = probe.stream([probe.act(session, 0, seed=2)])
        expect(
            reply.status.code == code_number(grpc.StatusCode.FAILED_PRECONDITION),
            f"ActStream retry with another observation: got {reply.status}",
        )
        fields = [e.field for e in reply.status.errors]
        expect(
            fields and fields[0].startswith("observation."),
            f"ActStream: expected a FieldError on observation.<name>, got {fields}",
        )
        expect(not reply.HasField("action"), "ActStream: a failed retry carries an action")
    return "same observation: cached reply; another: FAILED_PRECONDITION naming the field"


def respond_by(probe: Probe) -> str | None:
    """ActStream: a passed respond_by is DEADLINE_EXCEEDED on arrival, step not used up."""
    if not probe.policy.capabilities.streaming:
        return None
    session = probe.open()
    expired = probe.act(session, 0)
    expired.budget_ms = 0
    past = probe.act(session, 0)
    past.deadline.CopyFrom(Timestamp(seconds=int(time.time()) - 60))
    unset = probe.act(session, 0)
    generous = probe.act(session, 1)
    generous.budget_ms = int(probe.timeout_s * 1000)
    replies = probe.stream([expired, past, unset, generous])
    expect(len(replies) == 4, f"ActStream: expected 4 replies, got {len(replies)}")
    deadline = code_number(grpc.StatusCode.DEADLINE_EXCEEDED)
    for reply, what in zip(replies[:2], ("budget_ms = 0", "a deadline in the past"), strict=True):
        expect(
            reply.status.code == deadline
            and "respond_by passed on arrival" in reply.status.message
            and not reply.HasField("action"),
            f"{what}: expected DEADLINE_EXCEEDED 'respond_by passed on arrival' without an "
            f"action, got {reply.status}",
        )
    expect(
        replies[2].status.code == 0,
        f"respond_by unset: expected OK (the step was not used up), got {replies[2].status}",
    )
    expect(replies[3].status.code == 0, f"budget_ms {generous.budget_ms}: got {replies[3].status}")
    act = probe.act(session, 2)
    act.budget_ms = 0
    reply = probe.call("Act", act)  # Act ignores respond_by
    expect(reply.status.code == 0, f"Act with budget_ms = 0: expected OK (ignored), got {reply}")
    return "passed on arrival -> DEADLINE_EXCEEDED, step not used up; unset = no deadline"


def max_batch(probe: Probe) -> str | None:
    """ActBatch carries up to max_batch sessions, each once; one more fails the call."""
    caps = probe.policy.capabilities
    if not caps.batching:
        probe.fails(
            "ActBatch",
            pb.ActBatchRequest(),
            grpc.StatusCode.UNIMPLEMENTED,
            "ActBatch without batching",
        )
        return "not batching: UNIMPLEMENTED"
    size = min(caps.max_batch, 256)
    sessions = [probe.open() for _ in range(size)]
    items = [probe.act(s, 0, i) for i, s in enumerate(sessions)]
    reply = probe.call("ActBatch", pb.ActBatchRequest(items=items))
    expect(
        [i.session_id for i in reply.items] == sessions,
        "ActBatch: expected one reply per item, in request order",
    )
    bad = [i.status for i in reply.items if i.status.code or not i.HasField("action")]
    expect(not bad, f"ActBatch of {size}: items failed: {bad[:2]}")
    twice = pb.ActBatchRequest(items=[probe.act(sessions[0], 1), probe.act(sessions[0], 2)])
    second = probe.call("ActBatch", twice).items[1]
    expect(
        second.status.code == code_number(grpc.StatusCode.INVALID_ARGUMENT)
        and [e.field for e in second.status.errors] == ["session_id"],
        f"a session twice in one ActBatch: expected INVALID_ARGUMENT on session_id for the "
        f"second item, got {second.status}",
    )
    if size == caps.max_batch:
        over = pb.ActBatchRequest(items=[*items, probe.act(sessions[0], 5)])
        probe.fails(
            "ActBatch",
            over,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"ActBatch of {size + 1} items (max_batch {caps.max_batch})",
        )
    return f"{size} sessions answered in order; a session twice and {size + 1} items refused"


def action_check(probe: Probe) -> str:
    """An OK reply's action is valid for the server's own spec, whatever the observation.

    Random, zeros, at the bounds, NaN: the server checks its policy's action and answers
    INTERNAL for a bad one (the server's duty: a healthy server cannot be made to return one,
    so what can be seen from outside is that no bad action ever comes back OK).
    """
    spec = probe.policy
    check = ActionCheck(spec.action, chunking=spec.capabilities.action_chunking)
    session = probe.open()
    cases: dict[str, Callable[[], dict[str, np.ndarray]]] = {
        "random": lambda: probe.values(3),
        "zeros": lambda: {n: np.zeros(f.shape, f.dtype) for n, f in probe.observation.items()},
        "low bounds": lambda: _at_bounds(probe, "low"),
        "high bounds": lambda: _at_bounds(probe, "high"),
        "NaN": lambda: {
            n: np.full(f.shape, np.nan, f.dtype)
            if np.dtype(f.dtype).kind == "f"
            else np.zeros(f.shape, f.dtype)
            for n, f in probe.observation.items()
        },
    }
    refused = []
    for step, (what, values) in enumerate(cases.items()):
        try:
            reply = probe.call("Act", probe.act(session, step, values=values()))
        except grpc.RpcError as exc:
            expect(
                exc.code() == grpc.StatusCode.INTERNAL,
                f"{what} observation: expected an action or INTERNAL, got "
                f"{exc.code().name} ({exc.details()})",
            )
            refused.append(what)
            continue
        try:
            check(from_tensor(reply.action, "action"))
        except (BadAction, TensorError) as exc:
            raise ConformanceError(
                f"{what} observation: the server answered OK with a bad action ({exc}); it "
                "must check its policy's action and answer INTERNAL"
            ) from None
    internal = f", INTERNAL for {refused}" if refused else ""
    return f"{len(cases)} observations: valid actions{internal}"


def bearer_token(probe: Probe) -> str | None:
    """The token in ``Bearer``, ``bearer`` or ``BEARER`` works; none or a wrong one does not."""
    if not probe.token:
        return None
    for scheme in ("Bearer", "bearer", "BEARER", "Bearer "):
        try:
            auth = (("authorization", f"{scheme} {probe.token}"),)
            probe.call("GetSpec", pb.GetSpecRequest(), metadata=auth)
        except grpc.RpcError as exc:
            raise ConformanceError(
                f"authorization '{scheme.strip()}{' ' * (1 + scheme.count(' '))}<token>': "
                f"refused with {exc.code().name} (the scheme is case-insensitive, one or more "
                "spaces)"
            ) from None
    wrong = (("authorization", f"Bearer {probe.token}x"),)
    refused: dict[str, object] = {"no token": None, "a wrong token": wrong}
    for what, sent in refused.items():
        try:
            probe.call("GetSpec", pb.GetSpecRequest(), metadata=sent)
        except grpc.RpcError as exc:
            expect(
                exc.code() == grpc.StatusCode.UNAUTHENTICATED,
                f"{what}: expected UNAUTHENTICATED, got {exc.code().name}",
            )
            continue
        raise ConformanceError(f"{what}: expected UNAUTHENTICATED, the call was answered")
    return "Bearer / bearer / BEARER accepted; missing or wrong token UNAUTHENTICATED"


def reflection(probe: Probe) -> str:
    """Reflection as grpc.reflection.v1 and v1alpha lists the policy and health services."""
    from grpc_reflection.v1alpha import reflection_pb2

    listed = {}
    for version in ("v1", "v1alpha"):
        method = probe.channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )  # the v1 messages are the v1alpha ones under another package: the same bytes
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            (reply,) = list(
                method(iter([request]), timeout=probe.timeout_s, metadata=probe.metadata)
            )
        except grpc.RpcError as exc:
            raise ConformanceError(
                f"grpc.reflection.{version}: {exc.code().name} (serve both v1 and v1alpha)"
            ) from None
        listed[version] = {s.name for s in reply.list_services_response.service}
        for name in (SERVICE, "grpc.health.v1.Health"):
            expect(name in listed[version], f"grpc.reflection.{version} does not list {name}")
    return "v1 and v1alpha list PolicyService and Health"


def _at_bounds(probe: Probe, side: str) -> dict[str, np.ndarray]:
    values = {}
    for name, spec in probe.observation.items():
        bound = getattr(spec, side)
        fill = np.zeros(spec.shape) if bound is None else np.broadcast_to(bound, spec.shape)
        values[name] = np.asarray(fill, dtype=spec.dtype)
    return values


#: Every check by name, in the order they run.
CHECKS: dict[str, Callable[[Probe], str | None]] = {
    "health": health,
    "GetSpec": get_spec,
    "handshake: accepted": handshake_accepted,
    "handshake: rejected with field errors": handshake_rejected,
    "protocol_version": protocol_version,
    "capabilities": capabilities,
    "explicit OK status": ok_status,
    "error text": error_text,
    "steps and sessions": steps,
    "retry with another observation": retry,
    "respond_by": respond_by,
    "ActBatch max_batch": max_batch,
    "packed: layout": packed.layout,
    "packed: round trip": packed.round_trip,
    "packed: errors": packed.errors,
    "image encodings": images.image_encodings,
    "server checks its actions": action_check,
    "bearer token": bearer_token,
    "reflection v1 and v1alpha": reflection,
}
#: A failure of these stops the run: the later checks need a serving, accepting server.
STOP_ON_FAILURE = ("health", "GetSpec", "handshake: accepted")
