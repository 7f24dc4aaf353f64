import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]
    DTYPE_INT32: _ClassVar[DType]
    DTYPE_INT64: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]
    DTYPE_BOOL: _ClassVar[DType]

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_RAW: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
    ENCODING_JPEG: _ClassVar[Encoding]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType
DTYPE_INT32: DType
DTYPE_INT64: DType
DTYPE_UINT8: DType
DTYPE_BOOL: DType
ENCODING_RAW: Encoding
ENCODING_PNG: Encoding
ENCODING_JPEG: Encoding

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "encoding")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    encoding: Encoding
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "dtype", "shape", "low", "high")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    low: _containers.RepeatedScalarFieldContainer[float]
    high: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., low: _Optional[_Iterable[float]] = ..., high: _Optional[_Iterable[float]] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("streaming", "batching", "action_chunking", "max_batch", "packed_observations", "image_encodings")
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    ACTION_CHUNKING_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    PACKED_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    streaming: bool
    batching: bool
    action_chunking: bool
    max_batch: int
    packed_observations: bool
    image_encodings: _containers.RepeatedScalarFieldContainer[Encoding]
    def __init__(self, streaming: _Optional[bool] = ..., batching: _Optional[bool] = ..., action_chunking: _Optional[bool] = ..., max_batch: _Optional[int] = ..., packed_observations: _Optional[bool] = ..., image_encodings: _Optional[_Iterable[_Union[Encoding, str]]] = ...) -> None: ...

class PackedField(_message.Message):
    __slots__ = ("name", "dtype", "shape", "offset", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    offset: int
    size: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class PackedLayout(_message.Message):
    __slots__ = ("fields", "size")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[PackedField]
    size: int
    def __init__(self, fields: _Optional[_Iterable[_Union[PackedField, _Mapping]]] = ..., size: _Optional[int] = ...) -> None: ...

class PolicySpec(_message.Message):
    __slots__ = ("policy_id", "version", "protocol_version", "observation", "action", "capabilities")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    version: str
    protocol_version: str
    observation: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    action: TensorSpec
    capabilities: Capabilities
    def __init__(self, policy_id: _Optional[str] = ..., version: _Optional[str] = ..., protocol_version: _Optional[str] = ..., observation: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., action: _Optional[_Union[TensorSpec, _Mapping]] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "expected", "got")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    GOT_FIELD_NUMBER: _ClassVar[int]
    field: str
    expected: str
    got: str
    def __init__(self, field: _Optional[str] = ..., expected: _Optional[str] = ..., got: _Optional[str] = ...) -> None: ...

class StepStatus(_message.Message):
    __slots__ = ("code", "message", "errors")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ...) -> None: ...

class GetSpecRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("observation", "action", "site", "campaign", "episode", "seed", "protocol_version", "capabilities")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    observation: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    action: TensorSpec
    site: str
    campaign: str
    episode: int
    seed: int
    protocol_version: str
    capabilities: Capabilities
    def __init__(self, observation: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., action: _Optional[_Union[TensorSpec, _Mapping]] = ..., site: _Optional[str] = ..., campaign: _Optional[str] = ..., episode: _Optional[int] = ..., seed: _Optional[int] = ..., protocol_version: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("accepted", "session_id", "errors", "warnings", "spec", "packed_layout")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PACKED_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    session_id: str
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    spec: PolicySpec
    packed_layout: PackedLayout
    def __init__(self, accepted: _Optional[bool] = ..., session_id: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., spec: _Optional[_Union[PolicySpec, _Mapping]] = ..., packed_layout: _Optional[_Union[PackedLayout, _Mapping]] = ...) -> None: ...

class ResetSessionRequest(_message.Message):
    __slots__ = ("session_id", "episode", "seed")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    episode: int
    seed: int
    def __init__(self, session_id: _Optional[str] = ..., episode: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class ResetSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActRequest(_message.Message):
    __slots__ = ("session_id", "step", "observation", "packed_observation", "deadline", "budget_ms")
    class ObservationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    PACKED_OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    step: int
    observation: _containers.MessageMap[str, Tensor]
    packed_observation: bytes
    deadline: _timestamp_pb2.Timestamp
    budget_ms: int
    def __init__(self, session_id: _Optional[str] = ..., step: _Optional[int] = ..., observation: _Optional[_Mapping[str, Tensor]] = ..., packed_observation: _Optional[bytes] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., budget_ms: _Optional[int] = ...) -> None: ...

class ActResponse(_message.Message):
    __slots__ = ("session_id", "step", "action", "status", "compute")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    step: int
    action: Tensor
    status: StepStatus
    compute: ComputeUsage
    def __init__(self, session_id: _Optional[str] = ..., step: _Optional[int] = ..., action: _Optional[_Union[Tensor, _Mapping]] = ..., status: _Optional[_Union[StepStatus, _Mapping]] = ..., compute: _Optional[_Union[ComputeUsage, _Mapping]] = ...) -> None: ...

class ComputeUsage(_message.Message):
    __slots__ = ("cpu_seconds", "joules", "source")
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOULES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    cpu_seconds: float
    joules: float
    source: str
    def __init__(self, cpu_seconds: _Optional[float] = ..., joules: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class ActBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ActRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[ActRequest, _Mapping]]] = ...) -> None: ...

class ActBatchResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ActResponse]
    def __init__(self, items: _Optional[_Iterable[_Union[ActResponse, _Mapping]]] = ...) -> None: ...
