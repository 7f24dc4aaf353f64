"""The server's check of its policy's actions (`protos.actions.ActionCheck`)."""

from __future__ import annotations

import numpy as np
import pytest

from protos.actions import ActionCheck, BadAction
from protos.specs import FieldSpec

BOX = FieldSpec((2,), "float32", [-1.0, 0.0], [1.0, 2.0])


def _error(check: ActionCheck, action: object) -> tuple[str, str, str]:
    with pytest.raises(BadAction) as info:
        check(action)
    error = info.value.error
    assert str(info.value) == f"{error.field}: expected {error.expected}, got {error.got}"
    return error.field, error.expected, error.got


def test_good_actions_pass_unchanged_or_converted_from_python_numbers() -> None:
    check = ActionCheck(BOX, chunking=False)
    action = np.array([0.5, 2.0], np.float32)
    assert check(action) is action  # the fast path returns the policy's own array
    converted = check([1, 0.25])
    assert converted.dtype == np.float32 and converted.tolist() == [1.0, 0.25]


def test_bounds_are_per_element_and_name_the_element() -> None:
    check = ActionCheck(BOX, chunking=False)
    bad = np.array([0.5, -0.5], np.float32)
    assert _error(check, bad) == (
        "action",
        ">= 0.0 (the spec's action bounds)",
        "-0.5 at element (1,)",
    )
    assert _error(check, np.array([0.0, np.inf], np.float32))[1] == "finite values"
    unbounded = ActionCheck(FieldSpec((2,), "float32"), chunking=False)
    assert unbounded(np.array([1e30, -1e30], np.float32)).shape == (2,)
    assert _error(unbounded, np.array([np.nan, 0], np.float32)) == (
        "action",
        "finite values",
        "nan at element (0,)",
    )


def test_chunks_only_when_announced_and_never_empty() -> None:
    chunk = np.zeros((3, 2), np.float32)
    assert _error(ActionCheck(BOX, chunking=False), chunk) == ("action.shape", "[2]", "[3, 2]")
    chunked = ActionCheck(BOX, chunking=True)
    assert chunked(chunk) is chunk
    expected = "[2] or [k, 2] with k >= 1"
    assert _error(chunked, np.zeros((0, 2), np.float32)) == ("action.shape", expected, "[0, 2]")
    chunk[2, 1] = 3.0
    assert _error(chunked, chunk) == (
        "action",
        "<= 2.0 (the spec's action bounds)",
        "3.0 at element (2, 1)",
    )


def test_typed_arrays_must_have_the_spec_dtype_and_lists_must_fit_it() -> None:
    check = ActionCheck(BOX, chunking=False)
    assert _error(check, np.zeros(2, np.float64)) == ("action.dtype", "float32", "float64")
    assert _error(check, np.float64(0.0))[0] == "action.dtype"
    assert _error(check, [True, False]) == ("action.dtype", "float32", "list of bool")
    assert _error(check, "go") == ("action.dtype", "float32", "str of str64")
    ints = ActionCheck(FieldSpec((2,), "int64", 0, 5), chunking=False)
    assert ints([1, 5]).dtype == np.int64
    assert _error(ints, [1.5, 2.0]) == ("action.dtype", "int64", "list of float64")
    assert _error(ints, [1, 6]) == (
        "action",
        "<= 5.0 (the spec's action bounds)",
        "6 at element (1,)",
    )
