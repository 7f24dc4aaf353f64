"""numpy <-> `Tensor` codec, shared by the policy server SDK and the testbed client.

Decoding never trusts the sender: the dtype must be known, the shape small and non-negative, and
the byte count must equal ``prod(shape) * itemsize`` before anything the declared shape asks for
is allocated (a message's own bytes are bounded by the transport's message size limit). RAW
tensors decode to read-only views of bytes taken from the message, without a further copy.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Collection, Sequence
from typing import Any, cast

import numpy as np

from protos.v1 import policy_service_pb2 as pb

MAX_RANK = 8
"""Largest number of dimensions accepted."""

MAX_ELEMENTS = 1 << 28
"""Largest number of elements accepted in one tensor (256 Mi)."""

_TO_NUMPY: dict[pb.DType, np.dtype] = {
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_FLOAT64: np.dtype("<f8"),
    pb.DTYPE_INT32: np.dtype("<i4"),
    pb.DTYPE_INT64: np.dtype("<i8"),
    pb.DTYPE_UINT8: np.dtype("u1"),
    pb.DTYPE_BOOL: np.dtype("?"),
}
_FROM_NAME: dict[str, pb.DType] = {dt.name: code for code, dt in _TO_NUMPY.items()}
_FROM_DTYPE: dict[np.dtype, pb.DType] = {dt: code for code, dt in _TO_NUMPY.items()}

_ENCODING_NAMES: dict[int, str] = {
    pb.ENCODING_RAW: "RAW",
    pb.ENCODING_PNG: "PNG",
    pb.ENCODING_JPEG: "JPEG",
}

SUPPORTED_DTYPES: tuple[str, ...] = tuple(_FROM_NAME)
"""numpy dtype names that have a wire `DType`."""

_OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")


class TensorError(ValueError):
    """A tensor or dtype that cannot be encoded or decoded.

    The message is always ``<field>: expected <expected>, got <got>``, so a server can put the
    three parts into a `FieldError` and the text stays the same on both sides.

    Attributes:
        field: The field that was wrong, e.g. ``observation.ee_pos.data``.
        expected: What the field should have been, e.g. ``12 bytes for float32[3]``.
        got: What it was, e.g. ``11``.
        reason: ``expected <expected>, got <got>``.
    """

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = str(got)
        self.reason = f"expected {expected}, got {self.got}"
        super().__init__(f"{field}: {self.reason}")


def dtype_to_proto(dtype: np.dtype | str | type, field: str = "dtype") -> pb.DType:
    """Map a numpy dtype (or its name) to the wire `DType` value.

    Raises:
        TensorError: If the dtype has no wire representation.
    """
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise TensorError(field, f"one of {SUPPORTED_DTYPES}", repr(dtype)) from exc
    code = _FROM_NAME.get(name)
    if code is None:
        raise TensorError(field, f"one of {SUPPORTED_DTYPES}", repr(name))
    return code


def dtype_from_proto(code: int, field: str = "dtype") -> np.dtype:
    """Map a wire `DType` value to a little-endian numpy dtype.

    Raises:
        TensorError: If the value is unknown or ``DTYPE_UNSPECIFIED``.
    """
    dtype = _TO_NUMPY.get(cast("pb.DType", code))  # any int may arrive on the wire
    if dtype is None:
        got = f"{code} (DTYPE_UNSPECIFIED)" if code == pb.DTYPE_UNSPECIFIED else code
        raise TensorError(field, "a known DType", got)
    return dtype


def check_shape(shape: Sequence[int], field: str = "shape") -> tuple[int, ...]:
    """Validate a declared shape and return it as a tuple.

    Raises:
        TensorError: On too many dimensions, negative dimensions or too many elements.
    """
    if len(shape) > MAX_RANK:
        raise TensorError(field, f"at most {MAX_RANK} dimensions", len(shape))
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise TensorError(field, "non-negative dimensions", list(dims))
    # Python ints do not overflow, so a hostile shape cannot wrap around to a small product.
    if math.prod(dims) > MAX_ELEMENTS:
        raise TensorError(field, f"at most {MAX_ELEMENTS} elements", list(dims))
    return dims


def to_tensor(
    array: np.ndarray | float | int | bool, encoding: pb.Encoding = pb.ENCODING_RAW
) -> pb.Tensor:
    """Encode an array as a `Tensor`.

    Args:
        array: Any array-like with a supported dtype.
        encoding: ``ENCODING_RAW`` (default), or PNG / JPEG for uint8 images (needs Pillow).

    Raises:
        TensorError: If the dtype is unsupported or the array cannot be image-encoded.
    """
    arr = array if type(array) is np.ndarray else np.asarray(array)
    code = _FROM_DTYPE.get(arr.dtype)  # fast path: native little-endian dtypes
    if code is None:
        code = dtype_to_proto(arr.dtype, "tensor.dtype")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
    if encoding == pb.ENCODING_RAW:
        return pb.Tensor(dtype=code, shape=arr.shape, data=arr.tobytes())
    return pb.Tensor(
        dtype=code, shape=arr.shape, data=_encode_image(arr, encoding), encoding=encoding
    )


def from_tensor(tensor: pb.Tensor, field: str = "tensor") -> np.ndarray:
    """Decode a `Tensor`, checking everything before allocating.

    Args:
        tensor: The message to decode.
        field: Name used in error messages, e.g. ``observation.ee_pos``.

    Returns:
        A read-only array view of the message bytes (RAW) or a decoded image.

    Raises:
        TensorError: On unknown dtype or encoding, absurd shape, or a byte count that does not
            match the shape.
    """
    dtype = dtype_from_proto(tensor.dtype, f"{field}.dtype")
    shape = check_shape(tensor.shape, f"{field}.shape")
    if tensor.encoding != pb.ENCODING_RAW:
        return _decode_image(tensor, dtype, shape, field)
    data = tensor.data
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise TensorError(
            f"{field}.data", f"{expected} bytes for {dtype.name}{list(shape)}", len(data)
        )
    array = np.frombuffer(data, dtype=dtype)
    if dtype.kind == "b":
        check_bool_bytes(array, field)
    return array.reshape(shape)


def check_bool_bytes(array: np.ndarray, field: str) -> None:
    """Pass if every byte of a bool array read from the wire is 0 or 1.

    Raises:
        TensorError: On ``<field>.data`` naming the largest byte found.
    """
    if array.size and array.view(np.uint8).max() > 1:
        top = int(array.view(np.uint8).max())
        raise TensorError(f"{field}.data", "bool bytes of 0 or 1", f"a byte of {top}")


class FieldDecoder:
    """Decodes tensors expected to have one dtype and shape; fast when they do.

    A well-formed tensor of the expected dtype and shape has exactly one wire form: a fixed
    header (dtype, shape, the data tag and length) followed by the data bytes. A tensor whose
    serialized bytes are that header plus that many bytes is decoded with one `np.frombuffer`
    (its dtype, shape, byte count and RAW encoding are then all as expected; anything extra,
    such as an encoding or an unknown field, changes the length). Anything else goes through
    `from_tensor`, whose errors name the field and the problem.

    Attributes:
        field: Name used in error messages, e.g. ``observation.ee_pos``.
        code: The expected wire `DType`.
        dtype: The expected numpy dtype (little-endian).
        shape: The expected shape.
        header: Wire bytes a well-formed tensor starts with (empty if there is no fast path:
            bool tensors, whose bytes must be checked, and empty tensors).
        wire_size: Serialized size of a well-formed tensor (-1 if there is no fast path).
        offset: Where the data starts in the serialized tensor.
    """

    def __init__(
        self,
        field: str,
        dtype: np.dtype | str,
        shape: Sequence[int],
        encodings: Collection[int] = (pb.ENCODING_PNG, pb.ENCODING_JPEG),
    ) -> None:
        self.field = field
        self.code = dtype_to_proto(dtype, field)
        self.dtype = _TO_NUMPY[self.code]
        self.shape = check_shape(shape, field)
        self.encodings = frozenset(encodings)
        nbytes = math.prod(self.shape) * self.dtype.itemsize
        self._flat = len(self.shape) == 1
        if nbytes and self.dtype.kind != "b":
            template = pb.Tensor(dtype=self.code, shape=self.shape, data=bytes(nbytes))
            wire = template.SerializeToString()
            self.offset = len(wire) - nbytes
            self.header = wire[: self.offset]
            self.wire_size = len(wire)
        else:
            self.offset, self.header, self.wire_size = 0, b"", -1

    def __call__(self, tensor: pb.Tensor) -> np.ndarray:
        """Decode ``tensor``; its dtype and shape may still differ from the expected ones."""
        raw = tensor.SerializeToString()
        if len(raw) == self.wire_size and raw.startswith(self.header):
            array = np.frombuffer(raw, self.dtype, -1, self.offset)
            return array if self._flat else array.reshape(self.shape)
        encoding = tensor.encoding
        if encoding != pb.ENCODING_RAW and encoding not in self.encodings:
            names = ["RAW"] + [_ENCODING_NAMES[e] for e in sorted(self.encodings)]
            expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            got = _ENCODING_NAMES.get(encoding, str(encoding))
            raise TensorError(f"{self.field}.encoding", expected, got)
        return from_tensor(tensor, self.field)


class FieldEncoder:
    """Encodes values of one field into a `Tensor` whose dtype and shape are set once.

    The mirror of `FieldDecoder`: `bind` sets a (reused) tensor's dtype and shape, and each
    call writes only the data, as `to_tensor` would encode it (little-endian RAW bytes), so
    the wire form is the one `from_tensor` and `FieldDecoder` read.

    Attributes:
        field: Name used in error messages, e.g. ``observation.ee_pos``.
        code: The wire `DType`.
        dtype: The numpy dtype, little-endian.
        shape: The shape.
    """

    def __init__(self, field: str, dtype: np.dtype | str, shape: Sequence[int]) -> None:
        self.field = field
        self.code = dtype_to_proto(dtype, field)
        self.dtype = _TO_NUMPY[self.code]
        self.shape = check_shape(shape, field)

    def bind(self, tensor: pb.Tensor) -> pb.Tensor:
        """Set ``tensor``'s dtype and shape (RAW encoding); returns it."""
        tensor.dtype = self.code
        del tensor.shape[:]
        tensor.shape.extend(self.shape)
        return tensor

    def convert(self, value: Any) -> np.ndarray:
        """``value`` as an array of the field's dtype (little-endian) and shape.

        Raises:
            TensorError: If the value's shape is not the field's.
        """
        if type(value) is not np.ndarray or value.dtype != self.dtype:
            value = np.asarray(value, dtype=self.dtype)
        if value.shape != self.shape:
            raise TensorError(f"{self.field}.shape", f"{self.shape}", value.shape)
        return value

    def __call__(self, tensor: pb.Tensor, value: Any) -> None:
        """Write ``value`` (converted to the dtype) into a tensor `bind` prepared.

        Raises:
            TensorError: If the value's shape is not the field's.
        """
        tensor.data = self.convert(value).tobytes()


def _encode_image(arr: np.ndarray, encoding: pb.Encoding) -> bytes:
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] > 4):
        got = f"{arr.dtype.name}{list(arr.shape)}"
        raise TensorError("tensor", "uint8 (H, W[, C<=4]) for an image encoding", got)
    from PIL import Image  # optional dependency, only for image-encoded tensors

    fmt = {pb.ENCODING_PNG: "PNG", pb.ENCODING_JPEG: "JPEG"}.get(encoding)
    if fmt is None:
        raise TensorError("tensor.encoding", "RAW, PNG or JPEG", encoding)
    image = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _decode_image(
    tensor: pb.Tensor, dtype: np.dtype, shape: tuple[int, ...], field: str
) -> np.ndarray:
    if tensor.encoding not in (pb.ENCODING_PNG, pb.ENCODING_JPEG):
        raise TensorError(f"{field}.encoding", "RAW, PNG or JPEG", tensor.encoding)
    if dtype != np.uint8 or len(shape) not in (2, 3):
        got = f"{dtype.name}{list(shape)}"
        raise TensorError(field, "uint8 (H, W[, C]) for an image encoding", got)
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(tensor.data))  # reads the header only
        # Compare the header's size to the declared shape before decoding any pixels.
        if (image.height, image.width) != shape[:2]:
            expected = f"an image of {shape[0]}x{shape[1]} (the declared shape)"
            raise TensorError(field, expected, f"an image of {image.height}x{image.width}")
        pixels = np.asarray(image)
    except (OSError, ValueError) as exc:
        if isinstance(exc, TensorError):
            raise
        reason = _OBJECT_REPR.sub("", str(exc))  # Pillow names the buffer by its address
        raise TensorError(
            f"{field}.data", "a PNG or JPEG image", f"bytes that cannot be decoded ({reason})"
        ) from exc
    if pixels.ndim == 2 and len(shape) == 3 and shape[2] == 1:
        pixels = pixels[:, :, None]
    if pixels.shape != shape:
        raise TensorError(field, f"shape {list(shape)}", f"a decoded image of {list(pixels.shape)}")
    return pixels
