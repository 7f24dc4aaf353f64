"""Conformance check of image encodings (protocol 1.1): what GetSpec lists is what is served.

Runs where the policy declares a uint8 image field (``(H, W)`` or ``(H, W, C)`` with C <= 4)
that the env offers; skipped otherwise. For every encoding the server lists in
``capabilities.image_encodings`` a session asking for it is accepted and a step with the image
in that encoding is answered OK; for every encoding it does not list, asking is a field error
on ``capabilities.image_encodings`` and an image sent in it anyway is INVALID_ARGUMENT on
``observation.<name>.encoding``. The images are encoded here as any client would (Pillow).
"""

from __future__ import annotations

import grpc
import numpy as np

from protos.specs import IMAGE_ENCODINGS
from protos.tensors import to_tensor
from protos.v1 import policy_service_pb2 as pb
from testbed.link._observations import is_image
from testbed.link.conformance import Probe, expect


def _step(probe: Probe, session: str, name: str, encoding: pb.Encoding) -> pb.ActRequest:
    request = probe.act(session, 0, seed=5)
    image = np.random.default_rng(5).integers(0, 256, probe.observation[name].shape, np.uint8)
    request.observation[name].CopyFrom(to_tensor(image, encoding))
    return request


def image_encodings(probe: Probe) -> str | None:
    """Listed encodings are accepted and decoded; unlisted ones are refused, naming the field."""
    images = [n for n in probe.declared() if is_image(probe.policy.observation[n])]
    if not images:
        return None
    name, served = images[0], probe.policy.capabilities.image_encodings
    for encoding, code in IMAGE_ENCODINGS.items():
        request = probe.open_request()
        request.capabilities.image_encodings.append(code)
        reply = probe.call("OpenSession", request)
        if reply.accepted:
            probe.opened.append(reply.session_id)
        upper = encoding.upper()
        if encoding in served:
            errors = [f"{e.field}: expected {e.expected}, got {e.got}" for e in reply.errors]
            expect(reply.accepted, f"OpenSession asking for {upper} (listed) rejected: {errors}")
            answer = probe.call("Act", _step(probe, reply.session_id, name, code))
            expect(
                answer.status.code == 0 and answer.HasField("action"),
                f"a step with observation.{name} as {upper} (listed): got {answer.status}",
            )
            continue
        fields = [e.field for e in reply.errors]
        expect(
            not reply.accepted and fields == ["capabilities.image_encodings"],
            f"OpenSession asking for {upper} (not listed): expected a rejection with the field "
            f"error capabilities.image_encodings, got accepted={reply.accepted} {fields}",
        )
        session = probe.open()
        details = probe.fails(
            "Act", _step(probe, session, name, code), grpc.StatusCode.INVALID_ARGUMENT,
            f"observation.{name} sent as {upper} (not listed)",
        )  # fmt: skip
        expect(
            f"observation.{name}.encoding" in details,
            f"{upper} (not listed): expected the error to name observation.{name}.encoding, "
            f"got {details!r}",
        )
    listed = ", ".join(e.upper() for e in served) or "none"
    return f"observation.{name}: listed [{listed}] decoded, the others refused"
