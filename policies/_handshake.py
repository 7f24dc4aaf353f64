"""OpenSession checks: the client's offered spaces against the policy's spec, field by field."""

from __future__ import annotations

import re

import numpy as np

from protos.specs import (
    PROTOCOL_VERSION,
    FieldSpec,
    PolicySpec,
    field_from_proto,
    image_encoding_names,
)
from protos.tensors import TensorError
from protos.v1 import policy_service_pb2 as pb


def _error(field: str, expected: object, got: object) -> pb.FieldError:
    return pb.FieldError(field=field, expected=str(expected), got=str(got))


def _bound_text(bound: np.ndarray | None) -> str:
    if bound is None:
        return "unbounded"
    flat = bound.ravel()
    return str(flat[0]) if np.all(flat == flat[0]) else np.array2string(flat, precision=4)


# MAJOR, MAJOR.MINOR or MAJOR.MINOR.PATCH in ASCII digits; a missing minor is 0, a patch ignored.
_VERSION = re.compile(r"(\d+)(?:\.(\d+)(?:\.\d+)?)?", re.ASCII)


def check_version(offered: str) -> tuple[list[pb.FieldError], list[str]]:
    """Semver check: a major mismatch is an error, a minor mismatch a warning.

    ``"1"`` reads as ``"1.0"``; a third (patch) component is ignored; anything else that is not
    ``MAJOR[.MINOR[.PATCH]]`` in ASCII digits (an empty string included) is an error.
    """
    match = _VERSION.fullmatch(offered)
    if match is None:
        expected = f"'{PROTOCOL_VERSION}' (MAJOR.MINOR, or MAJOR for MAJOR.0)"
        return [_error("protocol_version", expected, repr(offered))], []
    major, minor = int(match[1]), int(match[2] or 0)
    ours_major, ours_minor = (int(p) for p in PROTOCOL_VERSION.split("."))
    if major != ours_major:
        return [_error("protocol_version", f"major {ours_major}", offered)], []
    if minor != ours_minor:
        return [], [f"protocol minor version differs: server {PROTOCOL_VERSION}, client {offered}"]
    return [], []


def _check_field(where: str, want: FieldSpec, got: FieldSpec) -> list[pb.FieldError]:
    errors = []
    if want.shape != got.shape:
        errors.append(_error(f"{where}.shape", list(want.shape), list(got.shape)))
    if want.dtype != got.dtype:
        errors.append(_error(f"{where}.dtype", want.dtype, got.dtype))
    return errors


def _check_action_bounds(want: FieldSpec, got: FieldSpec) -> list[pb.FieldError]:
    """Check that the policy's action range lies inside the environment's."""
    errors = []
    if got.low is not None and (want.low is None or np.any(want.low < got.low)):
        errors.append(
            _error("action.low", f">= {_bound_text(got.low)} (env)", _bound_text(want.low))
        )
    if got.high is not None and (want.high is None or np.any(want.high > got.high)):
        errors.append(
            _error("action.high", f"<= {_bound_text(got.high)} (env)", _bound_text(want.high))
        )
    return errors


def _decode_offer(
    message: pb.TensorSpec, where: str, errors: list[pb.FieldError]
) -> FieldSpec | None:
    try:
        return field_from_proto(message, where)
    except TensorError as exc:
        errors.append(_error(exc.field, exc.expected, exc.got))
        return None


def check_open(
    spec: PolicySpec, request: pb.OpenSessionRequest
) -> tuple[list[pb.FieldError], list[str]]:
    """Compare an OpenSession request with the policy's spec.

    Returns:
        Every field error found (empty if the session is accepted) and any warnings.
    """
    errors, warnings = check_version(request.protocol_version)
    # name -> decoded spec; None for a spec already reported as malformed (not also "missing")
    offered: dict[str, FieldSpec | None] = {}
    for message in request.observation:
        where = f"observation.{message.name}"
        if message.name in offered:
            errors.append(_error(where, "each name once", "duplicate"))
        decoded = _decode_offer(message, where, errors)
        if offered.get(message.name) is None:
            offered[message.name] = decoded
    for name, want in spec.observation.items():
        if name not in offered:
            errors.append(_error(f"observation.{name}", want.describe(), "missing"))
        elif (got := offered[name]) is not None:
            errors.extend(_check_field(f"observation.{name}", want, got))
    if not request.HasField("action"):
        errors.append(_error("action", spec.action.describe(), "missing"))
    else:
        action = _decode_offer(request.action, "action", errors)
        if action is not None:
            field_errors = _check_field("action", spec.action, action)
            errors.extend(field_errors or _check_action_bounds(spec.action, action))
    if not request.HasField("capabilities"):
        warnings.append(_NO_CAPABILITIES)
    errors.extend(_check_capabilities(spec, request.capabilities))
    return errors, warnings


_NO_CAPABILITIES = (
    "capabilities not sent: read as streaming = false, batching = false, "
    "action_chunking = false, max_batch = 0, packed_observations = false, image_encodings = [] "
    "(send them to have a mismatch reported here)"
)


def _check_capabilities(spec: PolicySpec, wanted: pb.Capabilities) -> list[pb.FieldError]:
    caps = spec.capabilities
    errors = []
    if wanted.streaming and not caps.streaming:
        errors.append(_error("capabilities.streaming", "false (server has no ActStream)", "true"))
    if wanted.batching and not caps.batching:
        errors.append(_error("capabilities.batching", "false (server has no ActBatch)", "true"))
    elif wanted.batching and wanted.max_batch > caps.max_batch:
        expected = f"<= {caps.max_batch} (the server's max_batch)"
        errors.append(_error("capabilities.max_batch", expected, wanted.max_batch))
    if wanted.packed_observations and not caps.packed_observations:
        errors.append(
            _error(
                "capabilities.packed_observations",
                "false (server has no packed observations)",
                "true",
            )
        )
    offered = image_encoding_names(wanted.image_encodings)
    unserved = [name for name in offered if name not in caps.image_encodings]
    if unserved:
        served = ", ".join(name.upper() for name in caps.image_encodings) or "none"
        expected = f"some of [{served}] (the image encodings this server decodes; RAW always)"
        got = "[" + ", ".join(name.upper() for name in offered) + "]"
        errors.append(_error("capabilities.image_encodings", expected, got))
    if caps.action_chunking and not wanted.action_chunking:
        errors.append(
            _error("capabilities.action_chunking", "true (policy returns action chunks)", "false")
        )
    return errors
