"""Conformance checks of packed observations (protocol 1.1), one function each.

A server that does not advertise ``capabilities.packed_observations`` (every 1.0 server) skips
them. Packing here is done as a client in another language would do it: each value's
little-endian bytes written at the offset the server stated in ``packed_layout``; the layout
itself is compared with the contract's rule (`protos.packed.PackedLayout.for_fields`).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import numpy as np

from protos.packed import PackedLayout
from protos.tensors import dtype_from_proto
from protos.v1 import policy_service_pb2 as pb
from testbed.link.conformance import Probe, code_number, expect


def _open_packed(probe: Probe) -> tuple[str, pb.PackedLayout]:
    request = probe.open_request()
    request.capabilities.packed_observations = True
    reply = probe.call("OpenSession", request)
    errors = [f"{e.field}: expected {e.expected}, got {e.got}" for e in reply.errors]
    expect(reply.accepted, f"OpenSession with packed_observations rejected: {errors}")
    probe.opened.append(reply.session_id)
    expect(
        reply.HasField("packed_layout"),
        "OpenSession with capabilities.packed_observations = true (advertised in GetSpec) "
        "accepted without a packed_layout",
    )
    return str(reply.session_id), reply.packed_layout


def pack(layout: pb.PackedLayout, values: Mapping[str, np.ndarray]) -> bytes:
    """``values`` packed by the offsets ``layout`` states (padding zero)."""
    data = bytearray(layout.size)
    for field in layout.fields:
        dtype = dtype_from_proto(field.dtype, f"packed_layout.{field.name}.dtype")
        raw = np.ascontiguousarray(values[field.name], dtype=dtype).tobytes()
        data[field.offset : field.offset + len(raw)] = raw
    return bytes(data)


def _describe(layout: pb.PackedLayout) -> str:
    parts = [f"{f.name}@{f.offset}+{f.size}" for f in layout.fields]
    return f"[{', '.join(parts)}] size {layout.size}"


def layout(probe: Probe) -> str | None:
    """Asked for, the layout is the rule's: declared fields in spec order, naturally aligned."""
    if not probe.policy.capabilities.packed_observations:
        return None
    plain = probe.call("OpenSession", probe.open_request())
    if plain.accepted:
        probe.opened.append(plain.session_id)
    expect(
        not plain.HasField("packed_layout"),
        "a session opened without capabilities.packed_observations got a packed_layout",
    )
    _, got = _open_packed(probe)
    want = PackedLayout.for_fields(probe.policy.observation).to_proto()
    expect(
        got == want,
        f"packed_layout: expected {_describe(want)} (declared fields in spec order, each at a "
        f"multiple of its itemsize), got {_describe(got)}",
    )
    return f"{len(got.fields)} fields in {got.size} bytes, by the rule; none unless asked"


def round_trip(probe: Probe) -> str | None:
    """A packed step is answered like the named one: re-sending it named replays the reply."""
    if not probe.policy.capabilities.packed_observations:
        return None
    caps = probe.policy.capabilities
    session, packed_layout = _open_packed(probe)
    values = probe.values(1)
    packed = pb.ActRequest(
        session_id=session, step=0, packed_observation=pack(packed_layout, values)
    )
    first = probe.call("Act", packed)
    expect(first.status.code == 0 and first.HasField("action"), f"packed Act: got {first}")
    named = probe.call("Act", probe.act(session, 0, values=values))
    expect(
        named.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True),
        "step 0 re-sent in the named form with the same values did not replay the packed step's "
        "reply: the server decoded the packed observation to other values",
    )
    where = ["Act (named retry replays it)"]
    if caps.streaming:
        data = pack(packed_layout, probe.values(2))
        request = pb.ActRequest(session_id=session, step=1, packed_observation=data)
        (reply,) = probe.stream([request])
        expect(reply.status.code == 0 and reply.HasField("action"),
               f"packed ActStream: got {reply.status}")  # fmt: skip
        where.append("ActStream")
    if caps.batching:
        data = pack(packed_layout, probe.values(3))
        item = pb.ActRequest(session_id=session, step=2, packed_observation=data)
        (reply,) = probe.call("ActBatch", pb.ActBatchRequest(items=[item])).items
        expect(reply.status.code == 0 and reply.HasField("action"),
               f"packed ActBatch item: got {reply.status}")  # fmt: skip
        where.append("ActBatch")
    return "packed steps answered on " + ", ".join(where)


def errors(probe: Probe) -> str | None:
    """Wrong length, both forms, packed without negotiating: the documented errors."""
    if not probe.policy.capabilities.packed_observations:
        return None
    session, packed_layout = _open_packed(probe)
    good = pack(packed_layout, probe.values(4))
    size = packed_layout.size
    expected = f"{size} bytes (the session's packed layout)"
    text = f"packed_observation: expected {expected}, got {size + 1}"
    long = pb.ActRequest(session_id=session, step=0, packed_observation=good + b"\x00")
    details = probe.fails("Act", long, grpc.StatusCode.INVALID_ARGUMENT,
                          "a packed observation one byte too long")  # fmt: skip
    expect(details == f"Act: {text}", f"Act: expected the text 'Act: {text}', got {details!r}")
    if probe.policy.capabilities.streaming:
        reply, retry = probe.stream(
            [long, pb.ActRequest(session_id=session, step=0, packed_observation=good)]
        )
        got = [(e.field, e.expected, e.got) for e in reply.status.errors]
        want = [("packed_observation", expected, str(size + 1))]
        expect(
            reply.status.code == code_number(grpc.StatusCode.INVALID_ARGUMENT) and got == want,
            f"ActStream: expected INVALID_ARGUMENT with status.errors {want}, got {reply.status}",
        )
        expect(retry.status.code == 0, f"the failed step 0 was used up: {retry.status}")
    both = probe.act(session, 1)
    both.packed_observation = good
    details = probe.fails("Act", both, grpc.StatusCode.INVALID_ARGUMENT,
                          "a packed observation beside named fields")  # fmt: skip
    expect(details.startswith("Act: observation: expected no named fields"),
           f"both forms: expected 'Act: observation: expected no named fields ...', got "
           f"{details!r}")  # fmt: skip
    plain = probe.open()
    unasked = pb.ActRequest(session_id=plain, step=0, packed_observation=good)
    details = probe.fails("Act", unasked, grpc.StatusCode.FAILED_PRECONDITION,
                          "a packed observation on a session opened without it")  # fmt: skip
    expect("packed_observation" in details,
           f"packed without negotiating: expected the field packed_observation named, got "
           f"{details!r}")  # fmt: skip
    checked = "wrong length and both forms INVALID_ARGUMENT, unasked FAILED_PRECONDITION"
    return checked + _bool_field(probe, session, packed_layout, good)


def _bool_field(probe: Probe, session: str, packed_layout: pb.PackedLayout, good: bytes) -> str:
    """A bool byte of 2 is INVALID_ARGUMENT on observation.<name>.data (if a bool is declared)."""
    field = next((f for f in packed_layout.fields if f.dtype == pb.DTYPE_BOOL and f.size), None)
    if field is None:
        return ""
    bad = bytearray(good)
    bad[field.offset] = 2
    request = pb.ActRequest(session_id=session, step=2, packed_observation=bytes(bad))
    details = probe.fails("Act", request, grpc.StatusCode.INVALID_ARGUMENT, "a bool byte of 2")
    want = f"Act: observation.{field.name}.data: expected bool bytes of 0 or 1, got a byte of 2"
    expect(details == want, f"a packed bool byte of 2: expected {want!r}, got {details!r}")
    return f"; bool byte 2 on observation.{field.name}.data"
