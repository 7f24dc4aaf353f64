"""Packed observations (protos.packed): the layout rule, the codec, and what a layout may be."""

from __future__ import annotations

import numpy as np
import pytest

from protos.packed import PackedDecoder, PackedEncoder, PackedLayout
from protos.specs import FieldSpec
from protos.tensors import TensorError, to_tensor
from protos.v1 import policy_service_pb2 as pb

MIXED = {
    "flag": FieldSpec((), "bool"),
    "pose": FieldSpec((3,), "float32"),
    "count": FieldSpec((1,), "int64"),
    "image": FieldSpec((2, 3), "uint8"),
    "grid": FieldSpec((2, 2), "float64"),
}


def _values(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "flag": np.array(True),
        "pose": rng.uniform(-1, 1, 3).astype(np.float32),
        "count": np.array([2**53 + 1], np.int64),  # not exact as a float64: never cast
        "image": rng.integers(0, 255, (2, 3)).astype(np.uint8),
        "grid": rng.uniform(-1, 1, (2, 2)),
    }


def test_the_rule_orders_by_spec_and_aligns_each_field_to_its_itemsize() -> None:
    layout = PackedLayout.for_fields(MIXED)
    assert [(s.name, s.offset, s.size) for s in layout.slots] == [
        ("flag", 0, 1),
        ("pose", 4, 12),  # 1 -> 4
        ("count", 16, 8),
        ("image", 24, 6),
        ("grid", 32, 32),  # 30 -> 32
    ]
    assert layout.size == 64


def test_one_dtype_packs_without_padding() -> None:
    fields = {"a": FieldSpec((3,), "float32"), "b": FieldSpec((1,), "float32")}
    layout = PackedLayout.for_fields(fields)
    assert [(s.offset, s.size) for s in layout.slots] == [(0, 12), (12, 4)] and layout.size == 16


def test_each_field_decodes_to_what_its_named_tensor_holds() -> None:
    values = _values(np.random.default_rng(0))
    layout = PackedLayout.for_fields(MIXED)
    data = PackedEncoder(layout)(values)
    assert len(data) == layout.size
    for slot in layout.slots:  # the bytes at each offset are the named tensor's data
        named = to_tensor(np.asarray(values[slot.name], slot.dtype)).data
        assert data[slot.offset : slot.offset + slot.size] == named
    decoded = PackedDecoder(layout)(data)
    for name, value in values.items():
        assert decoded[name].dtype == np.dtype(MIXED[name].dtype)
        assert decoded[name].shape == MIXED[name].shape
        assert np.array_equal(decoded[name], value)
        assert not decoded[name].flags.writeable  # read-only, as named observations are


def test_a_uniform_layout_decodes_views_of_one_array() -> None:
    fields = {"a": FieldSpec((2, 2), "float32"), "b": FieldSpec((3,), "float32")}
    layout = PackedLayout.for_fields(fields)
    values = {"a": np.arange(4, dtype=np.float32).reshape(2, 2), "b": np.ones(3, np.float32)}
    decoded = PackedDecoder(layout)(PackedEncoder(layout)(values))
    assert np.array_equal(decoded["a"], values["a"]) and np.array_equal(decoded["b"], values["b"])


def test_the_encoder_converts_like_the_named_form_and_names_a_wrong_shape() -> None:
    layout = PackedLayout.for_fields({"a": FieldSpec((2,), "float32")})
    encode = PackedEncoder(layout)
    assert encode({"a": [1, 2]}) == np.array([1, 2], np.float32).tobytes()
    assert encode({"a": np.array([1, 2], ">f8")}) == np.array([1, 2], "<f4").tobytes()
    with pytest.raises(TensorError, match=r"observation\.a\.shape: expected \(2,\), got \(3,\)"):
        encode({"a": [1, 2, 3]})


def test_the_decoder_checks_the_length_and_bool_bytes_with_the_named_texts() -> None:
    layout = PackedLayout.for_fields(MIXED)
    decode = PackedDecoder(layout)
    good = PackedEncoder(layout)(_values(np.random.default_rng(1)))
    with pytest.raises(TensorError) as info:
        decode(good + b"\x00")
    assert str(info.value) == (
        "packed_observation: expected 64 bytes (the session's packed layout), got 65"
    )
    bad = bytearray(good)
    bad[0] = 7
    with pytest.raises(TensorError) as info:
        decode(bytes(bad))
    assert str(info.value) == (
        "observation.flag.data: expected bool bytes of 0 or 1, got a byte of 7"
    )


def test_a_layout_survives_the_wire_and_a_client_checks_what_it_is_given() -> None:
    layout = PackedLayout.for_fields(MIXED)
    assert PackedLayout.from_proto(layout.to_proto(), MIXED) == layout

    def refused(edit: object, offered: dict[str, FieldSpec] = MIXED) -> str:
        message = layout.to_proto()
        edit(message)  # type: ignore[operator]
        with pytest.raises(TensorError) as info:
            PackedLayout.from_proto(message, offered)
        return str(info.value)

    assert refused(lambda m: setattr(m.fields[1], "name", "nope")).startswith(
        "packed_layout.fields[1].name: expected one of"
    )
    assert refused(lambda m: setattr(m.fields[1], "name", "flag")) == (
        "packed_layout.fields[1].name: expected each field once, got 'flag' again"
    )
    assert refused(lambda m: setattr(m.fields[1], "dtype", pb.DTYPE_FLOAT64)) == (
        "packed_layout.fields[1]: expected float32[3] (as offered), got float64[3]"
    )
    assert refused(lambda m: setattr(m.fields[1], "size", 11)) == (
        "packed_layout.fields[1].size: expected 12 bytes, got 11"
    )
    assert refused(lambda m: setattr(m.fields[4], "offset", 40)) == (
        "packed_layout.fields[4].offset: expected a field within the layout's 64 bytes, got 40..72"
    )
    assert refused(lambda m: setattr(m.fields[2], "offset", 8)).startswith(
        "packed_layout.fields: expected fields that do not overlap, got pose float32[3] at 4..16"
    )


def test_a_layout_off_the_rule_is_still_followed_by_its_offsets() -> None:
    fields = {"a": FieldSpec((1,), "float32"), "b": FieldSpec((1,), "float32")}
    message = pb.PackedLayout(
        fields=[
            pb.PackedField(name="b", dtype=pb.DTYPE_FLOAT32, shape=[1], offset=0, size=4),
            pb.PackedField(name="a", dtype=pb.DTYPE_FLOAT32, shape=[1], offset=8, size=4),
        ],
        size=12,
    )
    layout = PackedLayout.from_proto(message, fields)
    data = PackedEncoder(layout)({"a": [1.0], "b": [2.0]})
    assert data == np.array([2.0, 0.0, 1.0], np.float32).tobytes()  # padding zero
    decoded = PackedDecoder(layout)(data)
    assert decoded["a"][0] == 1.0 and decoded["b"][0] == 2.0
