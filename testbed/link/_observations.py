"""How the client's reused ActRequests carry observations: named tensors or packed bytes.

A private helper of `testbed.link.client`. The form is chosen per session at OpenSession
(protocol 1.1): ``packed`` when the client asked for it and the server stated a layout,
``named`` otherwise. Both write through the codec the server decodes with
(`protos.tensors.FieldEncoder`; `protos.packed.PackedEncoder` converts through it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from protos.packed import PackedEncoder, PackedLayout
from protos.specs import FieldSpec
from protos.tensors import FieldEncoder, TensorError, to_tensor
from protos.v1 import policy_service_pb2 as pb
from testbed.errors import PolicyHandshakeError, PolicyProtocolError

logger = logging.getLogger(__name__)

ObservationForm = Literal["auto", "packed", "named"]
OBSERVATION_FORMS: tuple[str, ...] = ("auto", "packed", "named")
ImageEncoding = Literal["raw", "png"]
IMAGE_ENCODINGS: tuple[str, ...] = ("raw", "png")

#: Writes one observation into the request it was bound to.
Fill = Callable[[Mapping[str, Any]], None]


def _shape_error(exc: TensorError) -> PolicyProtocolError:
    field = exc.field.removesuffix(".shape")
    return PolicyProtocolError(f"{field}: expected shape {exc.expected}, got {exc.got}")


class ObservationWriter:
    """One session's observation form: named (a Tensor per field) or packed (one byte string).

    Args:
        observation: The env's observation fields (what the client offered).
        layout: The packed layout the server stated, or None for the named form.
        image_encoding: ``png`` sends image fields (uint8 ``(H, W[, C<=4])``) of the named
            form PNG-encoded (``Tensor.encoding``), ``raw`` as bytes.
    """

    def __init__(
        self,
        observation: Mapping[str, FieldSpec],
        layout: PackedLayout | None = None,
        image_encoding: ImageEncoding = "raw",
    ):
        self.observation = observation
        self.layout = layout
        self.image_encoding = image_encoding
        self._encoder = PackedEncoder(layout) if layout is not None else None

    @property
    def packed(self) -> bool:
        """True when observations travel packed."""
        return self._encoder is not None

    def bind(self, request: pb.ActRequest) -> Fill:
        """Prepare ``request`` once; the returned call writes each step's observation into it.

        The call raises `PolicyProtocolError` on a value of the wrong shape.
        """
        encoder = self._encoder
        if encoder is not None:

            def fill_packed(observation: Mapping[str, Any]) -> None:
                try:
                    request.packed_observation = encoder(observation)
                except TensorError as exc:
                    raise _shape_error(exc) from None

            return fill_packed
        slots = []
        images = []
        for name, spec in self.observation.items():
            if self.image_encoding == "png" and is_image(spec):
                images.append((name, spec))
                continue
            field = FieldEncoder(f"observation.{name}", spec.dtype, spec.shape)
            slots.append((name, field.bind(request.observation[name]), field))

        def fill_named(observation: Mapping[str, Any]) -> None:
            for name, tensor, encode in slots:
                try:
                    encode(tensor, observation[name])
                except TensorError as exc:
                    raise _shape_error(exc) from None
            for name, spec in images:
                value = np.asarray(observation[name])
                if value.shape != spec.shape or value.dtype != np.uint8:
                    raise PolicyProtocolError(
                        f"observation.{name}: expected {spec.describe()}, "
                        f"got {value.dtype.name}{list(value.shape)}"
                    )
                request.observation[name].CopyFrom(to_tensor(value, pb.ENCODING_PNG))

        return fill_named


def is_image(spec: FieldSpec) -> bool:
    """Whether a field can travel as PNG: uint8 ``(H, W)`` or ``(H, W, C)`` with C <= 4."""
    shape = spec.shape
    return spec.dtype == "uint8" and (len(shape) == 2 or (len(shape) == 3 and shape[2] <= 4))


def writer_for(
    reply: pb.OpenSessionResponse,
    asked: bool,
    form: ObservationForm,
    observation: Mapping[str, FieldSpec],
    address: str,
) -> ObservationWriter:
    """The observation form of a session the server accepted.

    Args:
        reply: The accepted OpenSession reply.
        asked: Whether the request asked for ``capabilities.packed_observations``.
        form: The client's setting (``packed`` requires a layout, ``auto`` falls back).
        observation: The env's observation fields.
        address: The server, for messages.

    Raises:
        PolicyHandshakeError: ``packed`` required but the reply has no layout (a 1.0 server
            ignores the request).
        PolicyProtocolError: The stated layout does not fit the offered fields.
    """
    if not asked:
        return ObservationWriter(observation)
    if not reply.HasField("packed_layout"):
        if form == "packed":
            raise PolicyHandshakeError(
                f"OpenSession: {address} accepted without a packed_layout (a 1.0 server?); "
                "use observation_form auto or named",
                [("packed_layout", "the session's packed layout", "none")],
            )
        logger.warning("OpenSession: %s stated no packed_layout; sending named observations",
                       address)  # fmt: skip
        return ObservationWriter(observation)
    try:
        layout = PackedLayout.from_proto(reply.packed_layout, observation)
    except TensorError as exc:
        raise PolicyProtocolError(f"OpenSession: malformed packed_layout: {exc}") from None
    return ObservationWriter(observation, layout)
