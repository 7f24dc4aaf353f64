"""Packed observations (protocol 1.1): every declared field in one byte string.

The layout is fixed at OpenSession and stated in ``OpenSessionResponse.packed_layout``, so a
client in any language packs by the offsets it is given. The rule that makes it
(`PackedLayout.for_fields`): the policy's declared observation fields in spec order, each at
the first offset at or after the end of the previous field that is a multiple of its own
itemsize (natural alignment, as a C struct lays out its members), padding ignored; the total
size is the end of the last field. One byte layout serves every mix of dtypes: a field's
bytes are exactly its ``Tensor.data`` (row-major, little-endian), so no value is cast (an
int64 counter next to a float32 vector stays exact, a uint8 image stays one byte per pixel)
and decoding a field is the same `numpy.frombuffer` view, with the same checks, as decoding
its named tensor.

`PackedEncoder` (client) converts values as the named form does
(`protos.tensors.FieldEncoder.convert`, for any value not already of the field's dtype and
shape); `PackedDecoder` (server) checks the length and bool bytes with the named form's error
texts (`protos.tensors.check_bool_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protos.specs import FieldSpec
from protos.tensors import (
    FieldEncoder,
    TensorError,
    check_bool_bytes,
    check_shape,
    dtype_from_proto,
    dtype_to_proto,
)
from protos.v1 import policy_service_pb2 as pb

PACKED_FIELD = "packed_observation"
"""The ActRequest field a packed observation travels in (and the name its errors carry)."""


@dataclass(frozen=True)
class PackedSlot:
    """Where one observation field lies in a packed observation.

    Attributes:
        name: The field's name (its TensorSpec name).
        dtype: numpy dtype name.
        shape: The field's shape.
        offset: First byte of the field.
        size: Bytes of the field (``prod(shape) * itemsize``).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int

    def describe(self) -> str:
        """Short human form, e.g. ``ee_pos float32[3] at 0..12``."""
        end = self.offset + self.size
        return f"{self.name} {self.dtype}{list(self.shape)} at {self.offset}..{end}"


@dataclass(frozen=True)
class PackedLayout:
    """The layout of one session's packed observations.

    Attributes:
        slots: The fields, in packing order.
        size: Total bytes of one packed observation.
    """

    slots: tuple[PackedSlot, ...]
    size: int

    @classmethod
    def for_fields(cls, observation: Mapping[str, FieldSpec]) -> PackedLayout:
        """The layout the contract's rule gives ``observation`` (the policy's declared fields)."""
        slots = []
        end = 0
        for name, spec in observation.items():
            itemsize = np.dtype(spec.dtype).itemsize
            offset = -(-end // itemsize) * itemsize  # round up to a multiple of the itemsize
            size = math.prod(spec.shape) * itemsize
            slots.append(PackedSlot(name, spec.dtype, tuple(spec.shape), offset, size))
            end = offset + size
        return cls(tuple(slots), end)

    def to_proto(self) -> pb.PackedLayout:
        """Encode as the ``PackedLayout`` message of OpenSessionResponse."""
        return pb.PackedLayout(
            fields=[
                pb.PackedField(
                    name=s.name,
                    dtype=dtype_to_proto(s.dtype, s.name),
                    shape=s.shape,
                    offset=s.offset,
                    size=s.size,
                )
                for s in self.slots
            ],
            size=self.size,
        )

    @classmethod
    def from_proto(cls, message: pb.PackedLayout, offered: Mapping[str, FieldSpec]) -> PackedLayout:
        """Decode a layout received from a server, checking it against the offered fields.

        Every field must be one the client offered, once, with the offered dtype and shape,
        and a size of ``prod(shape) * itemsize``; fields lie within ``size`` and do not overlap.
        The layout need not follow the rule: a client packs by the offsets it is given.

        Raises:
            TensorError: Naming the first field of the layout that is wrong.
        """
        slots: list[PackedSlot] = []
        for index, field in enumerate(message.fields):
            where = f"packed_layout.fields[{index}]"
            want = offered.get(field.name)
            if want is None:
                raise TensorError(f"{where}.name", f"one of {list(offered)}", repr(field.name))
            if any(s.name == field.name for s in slots):
                raise TensorError(f"{where}.name", "each field once", f"{field.name!r} again")
            dtype = dtype_from_proto(field.dtype, f"{where}.dtype").name
            shape = check_shape(field.shape, f"{where}.shape")
            if (dtype, shape) != (want.dtype, want.shape):
                got = f"{dtype}{list(shape)}"
                raise TensorError(where, f"{want.describe()} (as offered)", got)
            size = math.prod(shape) * np.dtype(dtype).itemsize
            if field.size != size:
                raise TensorError(f"{where}.size", f"{size} bytes", field.size)
            if field.offset + size > message.size:
                expected = f"a field within the layout's {message.size} bytes"
                got = f"{field.offset}..{field.offset + size}"
                raise TensorError(f"{where}.offset", expected, got)
            slots.append(PackedSlot(field.name, dtype, shape, int(field.offset), size))
        ordered = sorted(slots, key=lambda s: s.offset)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before.size and after.size and before.offset + before.size > after.offset:
                raise TensorError(
                    "packed_layout.fields", "fields that do not overlap",
                    f"{before.describe()} and {after.describe()}",
                )  # fmt: skip
        return cls(tuple(slots), int(message.size))

    def describe(self) -> str:
        """One line: every slot and the size."""
        return ", ".join(s.describe() for s in self.slots) + f"; {self.size} bytes"


def _uniform_dtype(layout: PackedLayout) -> np.dtype | None:
    """The one dtype of every field, if all share it and lie on its element boundaries."""
    dtypes = {s.dtype for s in layout.slots}
    if len(dtypes) != 1:
        return None
    dtype = np.dtype(dtypes.pop()).newbyteorder("<")
    aligned = all(s.offset % dtype.itemsize == 0 for s in layout.slots)
    return dtype if aligned and layout.size % dtype.itemsize == 0 else None


class PackedEncoder:
    """Packs observations (a mapping of field name to value) into the bytes of one layout.

    A value that is already an array of the field's dtype and shape is copied as it is; any
    other is converted as the named form converts it (`FieldEncoder.convert`). Padding bytes
    are zero. Fields the layout does not name are not sent.
    """

    def __init__(self, layout: PackedLayout) -> None:
        self.layout = layout
        self._fields: list[tuple[str, FieldEncoder, np.dtype, tuple[int, ...], bytes]] = []
        end = 0
        for slot in sorted(layout.slots, key=lambda s: s.offset):
            encoder = FieldEncoder(f"observation.{slot.name}", slot.dtype, slot.shape)
            pad = bytes(slot.offset - end)
            self._fields.append((slot.name, encoder, encoder.dtype, encoder.shape, pad))
            end = slot.offset + slot.size
        self._tail = bytes(layout.size - end)

    def __call__(self, observation: Mapping[str, Any]) -> bytes:
        """The packed bytes of ``observation``.

        Raises:
            KeyError: A field of the layout is missing from ``observation``.
            TensorError: A value's shape is not its field's (``observation.<name>.shape``).
        """
        parts = []
        for name, encoder, dtype, shape, pad in self._fields:
            value = observation[name]
            if type(value) is not np.ndarray or value.dtype is not dtype or value.shape != shape:
                value = encoder.convert(value)
            if pad:
                parts.append(pad)
            parts.append(value.tobytes())  # C order, as Tensor.data
        if self._tail:
            parts.append(self._tail)
        return b"".join(parts)


class PackedDecoder:
    """Unpacks the bytes of one layout into read-only arrays, one per field, without copies.

    Checks exactly what the named form checks of a tensor whose dtype and shape are fixed: the
    byte count (here of the whole, on ``packed_observation``) and bool bytes of 0 or 1 (on
    ``observation.<name>.data``, the named form's text).
    """

    def __init__(self, layout: PackedLayout) -> None:
        self.layout = layout
        self._expected = f"{layout.size} bytes (the session's packed layout)"
        self._uniform = _uniform_dtype(layout)
        self._bools = [f"observation.{s.name}" for s in layout.slots if s.dtype == "bool"]
        self._slots: list[tuple[str, np.dtype, int, int, tuple[int, ...] | None]] = []
        for slot in layout.slots:
            dtype = np.dtype(slot.dtype).newbyteorder("<")
            count = slot.size // dtype.itemsize
            reshape = None if len(slot.shape) == 1 else slot.shape
            if self._uniform is not None:  # element indices into one array of the whole
                start = slot.offset // dtype.itemsize
                self._slots.append((slot.name, dtype, start, start + count, reshape))
            else:  # byte offset and element count
                self._slots.append((slot.name, dtype, slot.offset, count, reshape))

    def __call__(self, data: bytes) -> dict[str, np.ndarray]:
        """Decode ``data``.

        Raises:
            TensorError: On a length other than the layout's size, or a bool byte not 0 or 1.
        """
        if len(data) != self.layout.size:
            raise TensorError(PACKED_FIELD, self._expected, len(data))
        out = {}
        if self._uniform is not None:
            whole = np.frombuffer(data, self._uniform)
            for name, _, start, stop, reshape in self._slots:
                array = whole[start:stop]
                out[name] = array if reshape is None else array.reshape(reshape)
        else:
            for name, dtype, offset, count, reshape in self._slots:
                array = np.frombuffer(data, dtype, count, offset)
                out[name] = array if reshape is None else array.reshape(reshape)
        for field in self._bools:
            check_bool_bytes(out[field.removeprefix("observation.")], field)
        return out
