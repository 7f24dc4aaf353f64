from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from protos.specs import FieldSpec
from testbed.errors import InvalidActionError
from testbed.link.policy import ActionValidator, validate_action

BOX = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)


def test_valid_actions_and_chunks_pass_and_lists_are_converted() -> None:
    out = validate_action([0.5, -1.0, 1.0, 0], BOX)
    assert out.dtype == np.float32 and out.shape == (4,)
    chunk = validate_action(np.zeros((3, 4), np.float32), BOX)
    assert chunk.shape == (3, 4) and chunk.dtype == np.float32
    assert validate_action([[0.0] * 4] * 2, BOX).shape == (2, 4)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", "int64", "uint8", "bool"])
@pytest.mark.parametrize("validator", [validate_action, None], ids=["function", "prepared"])
def test_an_array_of_another_dtype_is_refused_never_cast(dtype: str, validator: object) -> None:
    # A uint8 or bool 1 cast to float32 would be full-scale motion with suction on.
    action = np.ones(4, dtype)
    check = ActionValidator(BOX) if validator is None else (lambda a: validate_action(a, BOX))
    with pytest.raises(InvalidActionError) as info:
        check(action)
    assert info.value.reason == "dtype"
    assert f"expected float32, got {dtype}" in str(info.value)


def test_a_list_of_bools_or_strings_is_refused() -> None:
    for action in ([True, False, True, True], ["a", "b", "c", "d"]):
        with pytest.raises(InvalidActionError, match="action.dtype: expected float32, got list of"):
            validate_action(action, BOX)


@pytest.mark.parametrize(
    ("action", "reason", "text"),
    [
        (
            np.zeros(3, np.float32),
            "shape",
            "action.shape: expected [4] or [k, 4] with k >= 1, got [3]",
        ),
        (np.zeros((0, 4), np.float32), "shape", "got [0, 4]"),
        (np.zeros((2, 2, 4), np.float32), "shape", "got [2, 2, 4]"),
        (np.array(["a", "b", "c", "d"]), "dtype", "action.dtype: expected float32, got str32"),
        (np.zeros(4, np.complex64), "dtype", "complex64"),
        (
            np.array([0, np.inf, 0, 0], np.float32),
            "non-finite",
            "expected finite values, got inf at element (1,)",
        ),
        (
            np.array([0, 0, np.nan, 0], np.float32),
            "non-finite",
            "expected finite values, got nan at element (2,)",
        ),
        (
            np.array([0, 0, 0, 1.01], np.float32),
            "out-of-bounds",
            "expected <= 1.0 (the spec's action bounds), got 1.01",
        ),
        (
            np.array([[0, 0, 0, 0], [-2, 0, 0, 0]], np.float32),
            "out-of-bounds",
            "expected >= -1.0 (the spec's action bounds), got -2.0 at element (1, 0)",
        ),
    ],
)
def test_bad_actions_are_named(action: np.ndarray, reason: str, text: str) -> None:
    with pytest.raises(InvalidActionError) as info:
        validate_action(action, BOX)
    assert info.value.reason == reason
    assert text in str(info.value)


def test_chunks_can_be_refused() -> None:
    with pytest.raises(InvalidActionError, match=r"action.shape: expected \[4\], got \[2, 4\]"):
        validate_action(np.zeros((2, 4), np.float32), BOX, allow_chunk=False)


SPACES = [
    BOX,
    FieldSpec((4,), "float32", -1, 1),
    FieldSpec((2, 2), "float64", [[-1, 0], [0, -np.inf]], [[1, 2], [np.inf, 5]]),
    FieldSpec((3,), "float32"),  # unbounded: still finite
    FieldSpec((3,), "int64", 0, 10),  # not float: always the general path
]
ACTIONS = [
    np.zeros(4, np.float32),
    np.array([1, -1, 1, -1], np.float32),
    np.array([1, -1, 1, 1.0000001], np.float32),
    np.array([0, np.nan, 0, 0], np.float32),
    np.array([0, 0, -np.inf, 0], np.float32),
    np.array([[0.5, 1.5], [1e300, 4.0]]),
    np.array([[0.5, 1.5], [np.inf, 4.0]]),
    np.array([[-2.0, 1.5], [3.0, 4.0]]),
    np.array([1e38, -1e38, 0], np.float32),
    np.array([np.inf, 0, 0], np.float32),
    np.array([0, 5, 11], np.int64),
    np.array([0, 5, 10], np.int64),
    np.zeros((2, 4), np.float32),
    [0.1, 0.2, 0.3, 0.4],
]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("space", SPACES, ids=range(len(SPACES)))
@pytest.mark.parametrize("allow_chunk", [True, False])
def test_action_validator_agrees_with_validate_action(space: object, allow_chunk: bool) -> None:
    validator = ActionValidator(space, allow_chunk=allow_chunk)  # type: ignore[arg-type]
    for action in ACTIONS:
        try:
            expected = validate_action(action, space, allow_chunk=allow_chunk)  # type: ignore[arg-type]
        except InvalidActionError as exc:
            with pytest.raises(InvalidActionError) as info:
                validator(action)
            assert (info.value.reason, str(info.value)) == (exc.reason, str(exc))
        else:
            got = validator(action)
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
