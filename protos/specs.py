"""Records shared by the policy SDK and the testbed, and their wire conversions.

Both sides of the contract import these (``policies -> protos``, ``testbed -> protos``), so a
policy written against the SDK satisfies the testbed's `Policy` protocol without either package
importing the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from protos.tensors import TensorError, check_shape, dtype_from_proto, dtype_to_proto
from protos.v1 import policy_service_pb2 as pb

PROTOCOL_VERSION = "1.1"
"""Version of the contract spoken by this code (semver major.minor)."""


class BoxLike(Protocol):
    """Anything shaped like a `gymnasium.spaces.Box` (read-only attributes)."""

    @property
    def shape(self) -> Any: ...  # noqa: D102
    @property
    def dtype(self) -> Any: ...  # noqa: D102
    @property
    def low(self) -> Any: ...  # noqa: D102
    @property
    def high(self) -> Any: ...  # noqa: D102


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """Declared shape, dtype and bounds of one observation field or of the action.

    Attributes:
        shape: Dimensions (row-major).
        dtype: numpy dtype name, one of `protos.tensors.SUPPORTED_DTYPES`.
        low: Lower bounds broadcast to ``shape`` (float64, read-only), or None if unbounded.
        high: Upper bounds broadcast to ``shape`` (float64, read-only), or None if unbounded.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    # Given as anything that broadcasts to ``shape`` (a number, a list, an array); stored as
    # a read-only float64 ndarray or None.
    low: Any = None
    high: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", check_shape(tuple(self.shape), "shape"))
        dtype_to_proto(self.dtype)  # rejects unsupported dtypes
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        for name in ("low", "high"):
            value = getattr(self, name)
            if value is not None:
                bound = np.broadcast_to(np.asarray(value, dtype=np.float64), self.shape).copy()
                bound.flags.writeable = False
                object.__setattr__(self, name, bound)

    @classmethod
    def from_box(cls, box: BoxLike) -> FieldSpec:
        """Build from a `gymnasium.spaces.Box` (or anything with shape, dtype, low, high)."""
        return cls(tuple(box.shape), np.dtype(box.dtype).name, box.low, box.high)

    def describe(self) -> str:
        """Short human form, e.g. ``float32[3]``."""
        return f"{self.dtype}{list(self.shape)}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSpec):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.dtype == other.dtype
            and _same_bound(self.low, other.low)
            and _same_bound(self.high, other.high)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays inside


def _same_bound(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(a, b))


@dataclass(frozen=True)
class Capabilities:
    """What a policy server supports (or what a client intends to use).

    ``packed_observations`` (protocol 1.1) is the server's: the SDK server packs for every
    policy; a spec decoded from a 1.0 server reads it as False. ``image_encodings`` (1.1):
    a server's, the image encodings it decodes besides RAW (the SDK server decodes PNG and
    JPEG); a client's, the ones it will send. Names are `IMAGE_ENCODINGS` keys; a spec decoded
    from a 1.0 server lists none.
    """

    streaming: bool = True
    batching: bool = True
    action_chunking: bool = False
    max_batch: int = 64
    packed_observations: bool = True
    image_encodings: tuple[str, ...] = ("png", "jpeg")

    def __post_init__(self) -> None:
        image_encodings_to_proto(self.image_encodings)  # a name it does not know: ValueError


@dataclass(frozen=True)
class PolicySpec:
    """Identity, spaces and capabilities of a policy."""

    policy_id: str
    version: str
    observation: Mapping[str, FieldSpec]
    action: FieldSpec
    capabilities: Capabilities = field(default_factory=Capabilities)


@dataclass(frozen=True)
class SessionInfo:
    """One policy session: a stream of episodes of one environment at one site.

    Attributes:
        session_id: Unique id (assigned by the server on OpenSession when served remotely).
        site: Site id, e.g. ``kr-changwon``.
        campaign: Campaign id, or ``""``.
        episode: Episode index within the trial.
        seed: Episode seed, or None.
    """

    session_id: str
    site: str = ""
    campaign: str = ""
    episode: int = 0
    seed: int | None = None


def field_to_proto(name: str, spec: FieldSpec) -> pb.TensorSpec:
    """Encode a named `FieldSpec` as a `TensorSpec` message."""
    return pb.TensorSpec(
        name=name,
        dtype=dtype_to_proto(spec.dtype, name),
        shape=spec.shape,
        low=_bound_to_wire(spec.low),
        high=_bound_to_wire(spec.high),
    )


def _bound_to_wire(bound: np.ndarray | None) -> list[float]:
    if bound is None or bound.size == 0:
        return []
    flat = bound.ravel()
    if np.all(flat == flat[0]):
        return [float(flat[0])]
    return [float(v) for v in flat]


def field_from_proto(message: pb.TensorSpec, where: str) -> FieldSpec:
    """Decode a `TensorSpec` message.

    Args:
        message: The spec to decode.
        where: Field path used in errors, e.g. ``observation.ee_pos``.

    Raises:
        TensorError: On unknown dtype, bad shape or a bounds list of the wrong length.
    """
    dtype = dtype_from_proto(message.dtype, f"{where}.dtype")
    shape = check_shape(message.shape, f"{where}.shape")
    bounds = []
    for name in ("low", "high"):
        values = list(getattr(message, name))
        if len(values) not in (0, 1, math.prod(shape)):
            raise TensorError(f"{where}.{name}", f"0, 1 or {math.prod(shape)} values", len(values))
        bound = np.asarray(values).reshape(shape if len(values) > 1 else ()) if values else None
        bounds.append(bound)
    return FieldSpec(shape, dtype.name, bounds[0], bounds[1])


IMAGE_ENCODINGS: dict[str, pb.Encoding] = {"png": pb.ENCODING_PNG, "jpeg": pb.ENCODING_JPEG}
"""Image encoding name -> wire value (RAW is always accepted and never listed)."""


def image_encodings_to_proto(names: Sequence[str]) -> list[pb.Encoding]:
    """Wire values of image encoding names.

    Raises:
        ValueError: On a name that is not an `IMAGE_ENCODINGS` key.
    """
    unknown = [name for name in names if name not in IMAGE_ENCODINGS]
    if unknown:
        raise ValueError(
            f"image_encodings: expected some of {tuple(IMAGE_ENCODINGS)}, got {unknown[0]!r}"
        )
    return [IMAGE_ENCODINGS[name] for name in names]


def image_encoding_names(values: Iterable[int]) -> tuple[str, ...]:
    """Names of the image encodings among wire values (RAW and unknown values are left out)."""
    listed = set(values)
    return tuple(name for name, code in IMAGE_ENCODINGS.items() if code in listed)


def capabilities_to_proto(caps: Capabilities) -> pb.Capabilities:
    """Encode `Capabilities`."""
    return pb.Capabilities(
        streaming=caps.streaming,
        batching=caps.batching,
        action_chunking=caps.action_chunking,
        max_batch=caps.max_batch,
        packed_observations=caps.packed_observations,
        image_encodings=image_encodings_to_proto(caps.image_encodings),
    )


def capabilities_from_proto(message: pb.Capabilities) -> Capabilities:
    """Decode `Capabilities`."""
    return Capabilities(
        streaming=message.streaming,
        batching=message.batching,
        action_chunking=message.action_chunking,
        max_batch=message.max_batch,
        packed_observations=message.packed_observations,
        image_encodings=image_encoding_names(message.image_encodings),
    )


def spec_to_proto(spec: PolicySpec) -> pb.PolicySpec:
    """Encode a `PolicySpec` (the GetSpec reply)."""
    return pb.PolicySpec(
        policy_id=spec.policy_id,
        version=spec.version,
        protocol_version=PROTOCOL_VERSION,
        observation=[field_to_proto(n, f) for n, f in spec.observation.items()],
        action=field_to_proto("action", spec.action),
        capabilities=capabilities_to_proto(spec.capabilities),
    )


def spec_from_proto(message: pb.PolicySpec) -> PolicySpec:
    """Decode a `PolicySpec` message.

    Raises:
        TensorError: If any tensor spec is malformed.
    """
    observation = {
        m.name: field_from_proto(m, f"observation.{m.name}") for m in message.observation
    }
    return PolicySpec(
        policy_id=message.policy_id,
        version=message.version,
        observation=observation,
        action=field_from_proto(message.action, "action"),
        capabilities=capabilities_from_proto(message.capabilities),
    )
