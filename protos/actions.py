"""One check of an action against its spec (shape, dtype, finite values, bounds), for both sides.

A policy server checks its own policy's output before it goes on the wire (a broken policy is
then reported as the policy's fault: INTERNAL, naming the policy and the field), and the testbed
checks every action it receives before the simulator sees it (``testbed.link.policy``). Both use
`ActionCheck`, so the two sides can never disagree on what a valid action is.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from protos.specs import FieldSpec
from protos.v1 import policy_service_pb2 as pb

_FAST_MAX_ELEMENTS = 64  # up to here a loop over Python floats beats numpy's per-call overhead


class BadAction(Exception):
    """An action that breaks the policy's own action spec.

    Attributes:
        reason: ``shape``, ``dtype``, ``non-finite`` or ``out-of-bounds``.
        error: The field (``action``, ``action.shape``, ``action.dtype``), what the spec
            expects and what the policy returned.
    """

    def __init__(self, reason: str, field: str, expected: str, got: str) -> None:
        super().__init__(f"{field}: expected {expected}, got {got}")
        self.reason = reason
        self.error = pb.FieldError(field=field, expected=expected, got=got)


class ActionCheck:
    """Checks actions against one action spec, with the per-spec work done once.

    A numpy array (or scalar) must have exactly the spec's dtype; a list of Python numbers has
    no dtype of its own and is converted when its values fit (ints for an integer spec, ints or
    floats for a float spec). The shape must be the spec's, or ``(k, *shape)`` with k >= 1 when
    the policy announced ``action_chunking``. Every value must be finite and within the bounds.

    Args:
        spec: The action spec the policy announced.
        chunking: Whether the policy announced action chunks.
    """

    def __init__(self, spec: FieldSpec, *, chunking: bool) -> None:
        self._spec = spec
        self._chunking = chunking
        self._dtype = np.dtype(spec.dtype)
        self._shape = spec.shape
        size = math.prod(self._shape)
        self._fast = self._dtype.kind == "f" and 0 < size <= _FAST_MAX_ELEMENTS
        self._bounds: list[tuple[float, float]] = []
        if self._fast:
            top = sys.float_info.max  # every finite float64 (so every float32) is within
            low = spec.low.ravel().tolist() if spec.low is not None else [-math.inf] * size
            high = spec.high.ravel().tolist() if spec.high is not None else [math.inf] * size
            self._bounds = [(max(lo, -top), min(hi, top)) for lo, hi in zip(low, high, strict=True)]

    def __call__(self, action: Any) -> np.ndarray:
        """Return ``action`` as an array of the spec's dtype.

        Raises:
            BadAction: Naming the field, what the spec expects and what the policy returned.
        """
        if (
            self._fast
            and type(action) is np.ndarray
            and action.shape == self._shape
            and action.dtype == self._dtype
        ):
            # One comparison per value rejects NaN, +-inf and out-of-bounds values alike.
            for value, (low, high) in zip(action.ravel().tolist(), self._bounds, strict=True):
                if not low <= value <= high:
                    break
            else:
                return action
        return self._full(action)

    def _full(self, action: Any) -> np.ndarray:
        array = self._typed(action)
        shape = self._shape
        if array.shape != shape:
            chunked = self._chunking and array.ndim == len(shape) + 1 and array.shape[1:] == shape
            if not chunked or array.shape[0] < 1:
                expected = str(list(shape))
                if self._chunking:
                    expected += f" or [{', '.join(['k', *map(str, shape)])}] with k >= 1"
                raise BadAction("shape", "action.shape", expected, str(list(array.shape)))
        finite = np.isfinite(array)
        if not finite.all():
            index = _first(~finite)
            raise BadAction(
                "non-finite", "action", "finite values", f"{array[index]!s} at element {index}"
            )
        checks = ((self._spec.low, np.less, ">="), (self._spec.high, np.greater, "<="))
        for bound, outside, side in checks:
            if bound is None:
                continue
            wrong = outside(array, bound)  # a chunk broadcasts against the per-step bounds
            if wrong.any():
                index = _first(wrong)
                limit = np.broadcast_to(bound, array.shape)[index]
                expected = f"{side} {limit} (the spec's action bounds)"
                raise BadAction(
                    "out-of-bounds", "action", expected, f"{array[index]!s} at element {index}"
                )
        return array

    def _typed(self, action: Any) -> np.ndarray:
        target = self._dtype
        if isinstance(action, np.ndarray | np.generic):
            array = np.asarray(action)
            if array.dtype != target:
                raise BadAction("dtype", "action.dtype", target.name, array.dtype.name)
            return array
        try:
            array = np.asarray(action)
        except (TypeError, ValueError) as exc:
            raise BadAction(
                "dtype", "action.dtype", target.name, f"{type(action).__name__} ({exc})"
            ) from exc
        kinds = "iu" if target.kind in "iu" else "iuf"  # never bools, strings or objects
        if array.dtype.kind not in kinds or not np.can_cast(array.dtype, target, "same_kind"):
            got = f"{type(action).__name__} of {array.dtype.name}"
            raise BadAction("dtype", "action.dtype", target.name, got)
        return np.ascontiguousarray(array, dtype=target)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])
