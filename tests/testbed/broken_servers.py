"""Deliberately broken policy servers: the SDK server with one promise of the contract broken.

Each breakage is a server interceptor that rewrites the requests or replies of one RPC (or
hides a service), so the conformance suite can be shown to catch each kind of broken server.
`BREAKAGES` maps a conformance check's name to the interceptors that break what it checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np

from protos.v1 import policy_service_pb2 as pb

Rewrite = Callable[[Any], Any]
_POLICY = "/testbed.policy.v1.PolicyService/"


class Rewriter(grpc.ServerInterceptor):
    """Rewrites the requests and/or replies of the methods ending in ``method``."""

    def __init__(
        self,
        method: str,
        request: Rewrite | None = None,
        reply: Rewrite | None = None,
        details: Callable[[str], str] | None = None,
    ) -> None:
        self.method, self.request, self.reply, self.details = method, request, reply, details

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.endswith(self.method):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, inner: Any) -> Any:
        def behavior(request: Any, context: grpc.ServicerContext) -> Any:
            if self.request is not None:
                request = self.request(request)
            try:
                reply = inner(request, context)
            except Exception:
                if self.details is not None:
                    sent = context.details()  # type: ignore[attr-defined]
                    text = sent.decode() if isinstance(sent, bytes) else str(sent)
                    context.set_details(self.details(text))
                raise
            return self.reply(reply) if self.reply is not None else reply

        return behavior

    def _stream(self, inner: Any) -> Any:
        def behavior(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            if self.request is not None:
                requests = map(self.request, requests)
            for reply in inner(requests, context):
                yield self.reply(reply) if self.reply is not None else reply

        return behavior


class Hide(grpc.ServerInterceptor):
    """Answers UNIMPLEMENTED for every method starting with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        if handler_call_details.method.startswith(self.prefix):
            return None
        return continuation(handler_call_details)


class StrictToken(grpc.ServerInterceptor):
    """Accepts only ``authorization: Bearer <token>`` exactly (no other case, one space)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        if handler_call_details.method.startswith("/grpc.health.v1."):
            return continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if sent == f"Bearer {self.token}":
            return continuation(handler_call_details)

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")

        return grpc.unary_unary_rpc_method_handler(refuse)


def _set(message: Any, **values: Any) -> Any:
    for key, value in values.items():
        setattr(message, key, value)
    return message


def _lists_no_image_encoding(reply: Any) -> Any:
    """GetSpec claims no image encoding while the server still decodes PNG and JPEG."""
    del reply.capabilities.image_encodings[:]
    return reply


def _not_serving(reply: Any) -> Any:
    from grpc_health.v1 import health_pb2

    reply.status = health_pb2.HealthCheckResponse.NOT_SERVING
    return reply


def _reject_all(reply: pb.OpenSessionResponse) -> pb.OpenSessionResponse:
    del reply.errors[:]
    reply.errors.add(field="observation.ee_pos", expected="float32[3]", got="missing")
    return _set(reply, accepted=False, session_id="")


def _error_twice(reply: pb.OpenSessionResponse) -> pb.OpenSessionResponse:
    if reply.errors:
        reply.errors.add().CopyFrom(reply.errors[0])
    return reply


def _major_alone_unknown(request: pb.OpenSessionRequest) -> pb.OpenSessionRequest:
    if request.protocol_version == "1":
        request.protocol_version = "1.0.0.0"  # refused
    return request


def _no_capability_warning(reply: pb.OpenSessionResponse) -> pb.OpenSessionResponse:
    kept = [w for w in reply.warnings if not w.startswith("capabilities not sent")]
    del reply.warnings[:]
    reply.warnings.extend(kept)
    return reply


def _absent_ok(reply: pb.ActResponse) -> pb.ActResponse:
    if reply.status.code == 0:
        reply.ClearField("status")
    return reply


def _closed_nothing(request: pb.CloseSessionRequest) -> pb.CloseSessionRequest:
    return _set(request, session_id="not-the-session")


class _AnswerRetriesFromCache:
    """A retried step is answered for the observation it was first answered for."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, int], bytes] = {}

    def __call__(self, request: pb.ActRequest) -> pb.ActRequest:
        key = (request.session_id, request.step)
        if key in self.first:
            request.ParseFromString(self.first[key])
        else:
            self.first[key] = request.SerializeToString()
        return request


def _ignore_respond_by(request: pb.ActRequest) -> pb.ActRequest:
    request.ClearField("respond_by")
    return request


def _batch_cut_to_64(request: pb.ActBatchRequest) -> pb.ActBatchRequest:
    del request.items[64:]  # so a call over max_batch is served instead of refused
    return request


def _garbled(details: str) -> str:
    return details.replace("observation.", "expected a well-formed tensor, got ")


def _layout_swapped(reply: pb.OpenSessionResponse) -> pb.OpenSessionResponse:
    fields = reply.packed_layout.fields
    if len(fields) >= 2:
        fields[0].offset, fields[1].offset = fields[1].offset, fields[0].offset
    return reply


def _packed_zeroed(request: pb.ActRequest) -> pb.ActRequest:
    if request.HasField("packed_observation"):
        request.packed_observation = bytes(len(request.packed_observation))
    return request


def _packed_cut_to_words(request: pb.ActRequest) -> pb.ActRequest:
    size = len(request.packed_observation)
    if request.HasField("packed_observation") and size % 4:
        request.packed_observation = request.packed_observation[: size - size % 4]
    return request


class _PassBadActions(grpc.ServerInterceptor):
    """Answers OK with a NaN action where the server refused its policy's action (INTERNAL)."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if not handler_call_details.method.endswith("/Act"):
            return handler
        inner = handler.unary_unary

        def behavior(request: pb.ActRequest, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            except Exception:
                if "returned a bad action" not in str(context.details()):  # type: ignore[attr-defined]
                    raise
            context.set_code(grpc.StatusCode.OK)
            context.set_details("")
            action = np.full(4, np.nan, np.float32)
            tensor = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[4], data=action.tobytes())
            return pb.ActResponse(session_id=request.session_id, step=request.step, action=tensor)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


#: Conformance check name -> interceptors that break what it checks (fresh ones per call).
BREAKAGES: dict[str, Callable[[], list[grpc.ServerInterceptor]]] = {
    "health": lambda: [Rewriter("/grpc.health.v1.Health/Check", reply=_not_serving)],
    "GetSpec": lambda: [Rewriter(_POLICY + "GetSpec",
                                 reply=lambda r: _set(r, protocol_version="1"))],
    "handshake: accepted": lambda: [Rewriter(_POLICY + "OpenSession", reply=_reject_all)],
    "handshake: rejected with field errors": lambda: [
        Rewriter(_POLICY + "OpenSession", reply=_error_twice)
    ],
    "protocol_version": lambda: [Rewriter(_POLICY + "OpenSession", request=_major_alone_unknown)],
    "capabilities": lambda: [Rewriter(_POLICY + "OpenSession", reply=_no_capability_warning)],
    "explicit OK status": lambda: [Rewriter(_POLICY + "Act", reply=_absent_ok)],
    "error text": lambda: [Rewriter(_POLICY + "Act", details=_garbled)],
    "steps and sessions": lambda: [Rewriter(_POLICY + "CloseSession", request=_closed_nothing)],
    "retry with another observation": lambda: [
        Rewriter(_POLICY + "Act", request=_AnswerRetriesFromCache())
    ],
    "respond_by": lambda: [Rewriter(_POLICY + "ActStream", request=_ignore_respond_by)],
    "ActBatch max_batch": lambda: [Rewriter(_POLICY + "ActBatch", request=_batch_cut_to_64)],
    "packed: layout": lambda: [Rewriter(_POLICY + "OpenSession", reply=_layout_swapped)],
    "packed: round trip": lambda: [Rewriter(_POLICY + "Act", request=_packed_zeroed)],
    "packed: errors": lambda: [Rewriter(_POLICY + "Act", request=_packed_cut_to_words)],
    "image encodings": lambda: [Rewriter(_POLICY + "GetSpec", reply=_lists_no_image_encoding)],
    "server checks its actions": lambda: [_PassBadActions()],
    "reflection v1 and v1alpha": lambda: [Hide("/grpc.reflection.v1.")],
}  # fmt: skip
