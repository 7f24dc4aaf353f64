from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from protos.specs import FieldSpec
from testbed.errors import InvalidActionError
from testbed.policy import validate_action

BOX = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)


def test_valid_actions_and_chunks_pass_and_are_cast() -> None:
    out = validate_action([0.5, -1.0, 1.0, 0], BOX)
    assert out.dtype == np.float32 and out.shape == (4,)
    chunk = validate_action(np.zeros((3, 4), np.float64), BOX)
    assert chunk.shape == (3, 4) and chunk.dtype == np.float32
    assert validate_action(np.zeros(4, np.int64), FieldSpec((4,), "float32", -1, 1)).shape == (4,)


@pytest.mark.parametrize(
    ("action", "reason", "text"),
    [
        (np.zeros(3), "shape", "expected (4,) or (k, *(4,)), got (3,)"),
        (np.zeros((0, 4)), "shape", "got (0, 4)"),
        (np.zeros((2, 2, 4)), "shape", "got (2, 2, 4)"),
        (np.array(["a", "b", "c", "d"]), "dtype", "castable to float32"),
        (np.zeros(4, np.complex64), "dtype", "complex64"),
        (np.array([0, np.inf, 0, 0]), "non-finite", "element (1,) is inf"),
        (np.array([0, 0, np.nan, 0]), "non-finite", "element (2,) is nan"),
        (np.array([0, 0, 0, 1.01]), "out-of-bounds", "element (3,) = 1.01"),
        (
            np.array([[0, 0, 0, 0], [-2, 0, 0, 0]]),
            "out-of-bounds",
            "element (1, 0) = -2 outside [-1, 1]",
        ),
    ],
)
def test_bad_actions_are_named(action: np.ndarray, reason: str, text: str) -> None:
    with pytest.raises(InvalidActionError) as info:
        validate_action(action, BOX)
    assert info.value.reason == reason
    assert text in str(info.value)


def test_chunks_can_be_refused() -> None:
    with pytest.raises(InvalidActionError, match=r"expected \(4,\), got \(2, 4\)"):
        validate_action(np.zeros((2, 4)), BOX, allow_chunk=False)
