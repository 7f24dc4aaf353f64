from __future__ import annotations

import numpy as np
import pytest

from protos.specs import (
    Capabilities,
    FieldSpec,
    PolicySpec,
    field_from_proto,
    field_to_proto,
    spec_from_proto,
    spec_to_proto,
)
from protos.tensors import (
    MAX_ELEMENTS,
    SUPPORTED_DTYPES,
    FieldDecoder,
    TensorError,
    from_tensor,
    to_tensor,
)
from protos.v1 import policy_service_pb2 as pb


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_round_trip_every_dtype(dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype)
    tensor = to_tensor(array)
    assert list(tensor.shape) == [2, 3, 4]
    decoded = from_tensor(pb.Tensor.FromString(tensor.SerializeToString()))
    assert decoded.dtype == np.dtype(dtype) and np.array_equal(decoded, array)


def test_scalar_and_big_endian_input_round_trip() -> None:
    assert from_tensor(to_tensor(np.float64(2.5))).shape == ()
    big = np.array([1.0, -2.0], dtype=">f4")
    assert np.array_equal(from_tensor(to_tensor(big)), big.astype("<f4"))


def test_byte_count_must_match_shape() -> None:
    tensor = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[3], data=b"\x00" * 11)
    with pytest.raises(TensorError) as info:
        from_tensor(tensor, "obs.x")
    assert str(info.value) == "obs.x.data: expected 12 bytes for float32[3], got 11"
    # The parts a server puts into a FieldError, so both texts say the same once.
    assert (info.value.field, info.value.expected, info.value.got) == (
        "obs.x.data",
        "12 bytes for float32[3]",
        "11",
    )


def test_absurd_shapes_rejected_before_allocating() -> None:
    huge = pb.Tensor(dtype=pb.DTYPE_FLOAT64, shape=[1 << 40, 1 << 40], data=b"")
    with pytest.raises(TensorError, match=f"at most {MAX_ELEMENTS} elements"):
        from_tensor(huge, "t")
    with pytest.raises(TensorError, match="non-negative"):
        from_tensor(pb.Tensor(dtype=pb.DTYPE_UINT8, shape=[-1], data=b""))
    with pytest.raises(TensorError, match="at most 8 dimensions"):
        from_tensor(pb.Tensor(dtype=pb.DTYPE_UINT8, shape=[1] * 9, data=b"\x00"))


def test_unknown_dtypes_rejected_both_ways() -> None:
    with pytest.raises(TensorError) as info:
        from_tensor(pb.Tensor(shape=[1], data=b"\x00"), "t")
    assert str(info.value) == "t.dtype: expected a known DType, got 0 (DTYPE_UNSPECIFIED)"
    with pytest.raises(TensorError, match=r"t\.dtype: expected a known DType, got 99$"):
        from_tensor(pb.Tensor(dtype=99, shape=[1], data=b"\x00"), "t")
    with pytest.raises(TensorError, match="complex128"):
        to_tensor(np.zeros(2, np.complex128))
    with pytest.raises(TensorError, match="expected one of"):
        to_tensor(np.array(["a"]))


def test_bool_bytes_must_be_zero_or_one() -> None:
    with pytest.raises(TensorError, match="0 or 1"):
        from_tensor(pb.Tensor(dtype=pb.DTYPE_BOOL, shape=[2], data=b"\x01\x02"))


def test_decoded_raw_tensor_is_a_read_only_view() -> None:
    decoded = from_tensor(to_tensor(np.ones(3, np.float32)))
    assert not decoded.flags.writeable


def test_png_round_trip_and_header_checked_against_shape() -> None:
    image = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    tensor = to_tensor(image, pb.ENCODING_PNG)
    assert tensor.encoding == pb.ENCODING_PNG and len(tensor.data) != image.nbytes
    assert np.array_equal(from_tensor(tensor), image)
    tensor.shape[:] = [400, 500, 3]
    with pytest.raises(TensorError, match="expected an image of 400x500 .*, got an image of 4x5"):
        from_tensor(tensor, "camera")
    garbage = pb.Tensor(dtype=pb.DTYPE_UINT8, shape=[2, 2], data=b"nope", encoding=pb.ENCODING_JPEG)
    with pytest.raises(TensorError) as info:
        from_tensor(garbage, "camera")
    assert str(info.value).startswith(
        "camera.data: expected a PNG or JPEG image, got bytes that cannot be decoded ("
    )
    assert " at 0x" not in str(info.value)  # no object address echoed
    with pytest.raises(TensorError, match="uint8"):
        to_tensor(np.zeros((2, 2), np.float32), pb.ENCODING_PNG)


def test_jpeg_round_trip_is_close() -> None:
    image = np.full((8, 8), 120, np.uint8)
    decoded = from_tensor(to_tensor(image, pb.ENCODING_JPEG))
    assert decoded.shape == (8, 8) and np.abs(decoded.astype(int) - 120).max() <= 2


def test_field_spec_bounds_round_trip() -> None:
    per_element = FieldSpec((2, 2), "float32", [[0, 1], [2, 3]], np.inf)
    message = field_to_proto("x", per_element)
    assert list(message.low) == [0, 1, 2, 3] and list(message.high) == [np.inf]
    assert field_from_proto(message, "x") == per_element
    unbounded = FieldSpec((3,), "int64")
    assert field_from_proto(field_to_proto("y", unbounded), "y") == unbounded


def test_field_spec_rejects_bad_bounds_list_and_dtype() -> None:
    message = pb.TensorSpec(name="x", dtype=pb.DTYPE_FLOAT32, shape=[3], low=[0.0, 1.0])
    with pytest.raises(TensorError, match=r"observation\.x\.low: expected 0, 1 or 3 values, got 2"):
        field_from_proto(message, "observation.x")
    with pytest.raises(TensorError, match="float16"):
        FieldSpec((1,), "float16")


def test_policy_spec_round_trip() -> None:
    spec = PolicySpec(
        "p",
        "2.1",
        {"a": FieldSpec((3,), "float32", -1, 1), "img": FieldSpec((4, 4, 3), "uint8", 0, 255)},
        FieldSpec((4,), "float32", -1, 1),
        Capabilities(streaming=False, batching=True, action_chunking=True, max_batch=8),
    )
    decoded = spec_from_proto(pb.PolicySpec.FromString(spec_to_proto(spec).SerializeToString()))
    assert decoded == spec


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("float32", (3,)), ("float64", (2, 3)), ("int64", ()), ("uint8", (4, 1, 2)), ("bool", (3,))],
)
def test_field_decoder_matches_from_tensor(dtype: str, shape: tuple[int, ...]) -> None:
    decode = FieldDecoder("obs.x", dtype, shape)
    array = (np.arange(max(1, int(np.prod(shape)))) % 2).astype(dtype).reshape(shape)
    wire = pb.Tensor.FromString(to_tensor(array).SerializeToString())
    decoded = decode(wire)
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == shape
    assert np.array_equal(decoded, array) and not decoded.flags.writeable


def test_field_decoder_sends_anything_unusual_through_the_full_checks() -> None:
    decode = FieldDecoder("obs.x", "float32", (3,))
    data = np.arange(3, dtype=np.float32).tobytes()
    # An explicit RAW encoding, or a different shape or dtype, is still decoded correctly.
    explicit = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[3], data=data, encoding=pb.ENCODING_RAW)
    assert np.array_equal(decode(explicit), [0, 1, 2])
    assert decode(pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[1, 3], data=data)).shape == (1, 3)
    assert decode(pb.Tensor(dtype=pb.DTYPE_INT32, shape=[3], data=data)).dtype == np.int32
    with pytest.raises(TensorError, match=r"obs\.x\.data: expected 12 bytes"):
        decode(pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[3], data=data[:11]))
    with pytest.raises(TensorError, match=r"obs\.x\.dtype"):
        decode(pb.Tensor(shape=[3], data=data))
    # Unknown fields (a newer sender) make the wire form differ: decoded the slow way.
    extra = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[3], data=data).SerializeToString()
    with_unknown = pb.Tensor.FromString(extra + b"\x78\x01")  # field 15, varint 1
    assert np.array_equal(decode(with_unknown), [0, 1, 2])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8", "bool"])
def test_the_field_encoder_writes_what_to_tensor_writes(dtype: str) -> None:
    from protos.tensors import FieldEncoder

    value = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    encode = FieldEncoder("observation.x", dtype, (2, 3))
    tensor = encode.bind(pb.Tensor())
    encode(tensor, value.tolist())  # any array-like of the field's shape
    assert tensor.SerializeToString() == to_tensor(value).SerializeToString()
    assert np.array_equal(FieldDecoder("observation.x", dtype, (2, 3))(tensor), value)
    with pytest.raises(TensorError, match=r"observation.x.shape: expected \(2, 3\), got \(3,\)"):
        encode(tensor, np.zeros(3, dtype=dtype))
