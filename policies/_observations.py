"""Decoding an ActRequest's observation, named or packed, with one set of checks and errors."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from policies._sessions import StepFailure
from protos.packed import PACKED_FIELD, PackedDecoder, PackedLayout
from protos.specs import PolicySpec, image_encodings_to_proto
from protos.tensors import FieldDecoder, TensorError
from protos.v1 import policy_service_pb2 as pb

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def field_failure(field: str, expected: str, got: str) -> StepFailure:
    """INVALID_ARGUMENT ``<field>: expected <expected>, got <got>`` with its `FieldError`."""
    return StepFailure(
        _INVALID,
        f"{field}: expected {expected}, got {got}",
        [pb.FieldError(field=field, expected=expected, got=got)],
    )


class ObservationDecoder:
    """Decodes exactly the observation fields the policy declared, checking each one.

    Named: a field in its one well-formed wire form takes `FieldDecoder`'s fast path; any other
    is decoded and checked in full. Packed (protocol 1.1): `PackedDecoder` over the layout of
    the policy's declared fields (the same for every session, so built once). Either way a bad
    field becomes INVALID_ARGUMENT naming it, with the same text.
    """

    def __init__(self, spec: PolicySpec) -> None:
        encodings = image_encodings_to_proto(spec.capabilities.image_encodings)
        self._fields = [
            (name, FieldDecoder(f"observation.{name}", f.dtype, f.shape, encodings), f.describe())
            for name, f in spec.observation.items()
        ]
        self.layout = PackedLayout.for_fields(spec.observation)
        self.layout_proto = self.layout.to_proto()
        self._packed = PackedDecoder(self.layout)

    def __call__(self, request: pb.ActRequest, packed: bool) -> dict[str, np.ndarray]:
        """Decode ``request``'s observation; ``packed``: its session negotiated packing.

        Raises:
            StepFailure: INVALID_ARGUMENT naming the field; FAILED_PRECONDITION for a packed
                observation on a session that did not negotiate packing.
        """
        if request.HasField("packed_observation"):
            return self._unpack(request, packed)
        return self._named(request.observation)

    def _unpack(self, request: pb.ActRequest, packed: bool) -> dict[str, np.ndarray]:
        if not packed:
            expected = "a session opened with capabilities.packed_observations = true"
            raise StepFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{PACKED_FIELD}: expected {expected}, got a packed observation on a session "
                "opened without it",
                [pb.FieldError(field=PACKED_FIELD, expected=expected, got="packed")],
            )
        if len(request.observation):
            expected = f"no named fields when {PACKED_FIELD} is set"
            raise field_failure("observation", expected, f"{len(request.observation)}")
        try:
            return self._packed(request.packed_observation)
        except TensorError as exc:
            raise field_failure(exc.field, exc.expected, exc.got) from exc

    def _named(self, observation: Any) -> dict[str, np.ndarray]:
        out = {}
        get = observation.get
        for name, decode, expected in self._fields:
            tensor = get(name)
            if tensor is None:
                raise field_failure(decode.field, expected, "missing")
            try:
                array = decode(tensor)
            except TensorError as exc:
                raise field_failure(exc.field, exc.expected, exc.got) from exc
            if array.shape != decode.shape or array.dtype != decode.dtype:
                got = f"{array.dtype.name}{list(array.shape)}"
                raise field_failure(decode.field, expected, got)
            out[name] = array
        return out
