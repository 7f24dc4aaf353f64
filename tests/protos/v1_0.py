"""The 1.0 contract as a test fixture: its .proto (as released), its messages, a 1.0 peer.

``policy_service_v1_0.proto`` is the .proto of protocol 1.0, byte for byte as it was before 1.1
(commit 1bc9fb1). Its messages live in a descriptor pool of their own, so they load beside the
current ones; `AsServer10` makes the SDK server answer as a server generated from the 1.0
.proto would: every message it receives and sends goes through the 1.0 schema, so what 1.0
does not know is dropped (a 1.0 server ignores unknown fields), its spec says ``1.0`` and
OpenSession warns about the protocol minor as a 1.0 server does.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_tools import protoc

PROTO_1_0 = Path(__file__).with_name("policy_service_v1_0.proto")
_WELL_KNOWN = resources.files("grpc_tools") / "_proto"
_SERVICE = "/testbed.policy.v1.PolicyService/"


def generate_python(into: Path) -> None:
    """Write ``policy_service_pb2.py`` and ``_pb2_grpc.py`` of protocol 1.0 into ``into``."""
    shutil.copy(PROTO_1_0, into / "policy_service.proto")
    args = ["protoc", f"-I{into}", f"-I{_WELL_KNOWN}", f"--python_out={into}",
            f"--grpc_python_out={into}", str(into / "policy_service.proto")]  # fmt: skip
    assert protoc.main(args) == 0


@functools.cache
def messages() -> dict[str, type[Message]]:
    """The 1.0 message classes by full name (``testbed.policy.v1.ActRequest``)."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(PROTO_1_0, Path(folder) / "policy_service.proto")
        out = Path(folder) / "set.pb"
        proto = str(Path(folder) / "policy_service.proto")
        args = ["protoc", f"-I{folder}", f"-I{_WELL_KNOWN}", "--include_imports",
                f"--descriptor_set_out={out}", proto]  # fmt: skip
        assert protoc.main(args) == 0
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    found = pool.FindFileByName("policy_service.proto").message_types_by_name.values()
    return {d.full_name: message_factory.GetMessageClass(d) for d in found}


def through_1_0(message: Any) -> Any:
    """``message`` as a 1.0 peer sees it: fields 1.0 does not know are dropped."""
    old = messages()[message.DESCRIPTOR.full_name].FromString(message.SerializeToString())
    old.DiscardUnknownFields()
    fresh = type(message).FromString(old.SerializeToString())
    for spec in _specs_in(fresh):
        spec.protocol_version = "1.0"
    return fresh


_MINOR = re.compile(r"(\d+)(?:\.(\d+)(?:\.\d+)?)?", re.ASCII)
_MINOR_WARNING = "protocol minor version differs: "


def _warn_as_1_0(request: Any, reply: Any) -> Any:
    """The version warning a 1.0 server gives (its minor is 0), in place of the 1.1 server's."""
    kept = [w for w in reply.warnings if not w.startswith(_MINOR_WARNING)]
    match = _MINOR.fullmatch(request.protocol_version)
    if reply.accepted and match is not None and int(match[2] or 0) != 0:
        kept.insert(0, f"{_MINOR_WARNING}server 1.0, client {request.protocol_version}")
    del reply.warnings[:]
    reply.warnings.extend(kept)
    return reply


def _specs_in(message: Any) -> list[Any]:
    name = message.DESCRIPTOR.name
    if name == "PolicySpec":
        return [message]
    if name == "OpenSessionResponse" and message.HasField("spec"):
        return [message.spec]
    return []


class AsServer10(grpc.ServerInterceptor):
    """Every PolicyService request and reply passes through the 1.0 schema (see the module)."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(_SERVICE):
            return handler
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}  # fmt: skip
        if handler.unary_unary is not None:
            inner: Callable[..., Any] = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                reply = through_1_0(inner(through_1_0(request), context))
                if handler_call_details.method.endswith("/OpenSession"):
                    reply = _warn_as_1_0(request, reply)
                return reply

            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
        streamed: Callable[..., Any] = handler.stream_stream

        def stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for reply in streamed(map(through_1_0, requests), context):
                yield through_1_0(reply)

        return grpc.stream_stream_rpc_method_handler(stream, **kwargs)
