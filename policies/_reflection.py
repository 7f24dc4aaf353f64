"""gRPC server reflection as both ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

grpcio-reflection (1.85) serves only v1alpha, while current tools (grpcurl, Postman, grpcui)
ask for v1 first. The two protocols are the same messages under another package name (the v1
file is the v1alpha file renamed), so v1 is served by the same v1alpha servicer: requests and
replies are parsed and written with the v1alpha classes, which read and write the same bytes.
Both answer from one private descriptor pool that also holds the v1 file, so reflection can
describe the v1 service as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
_V1_FILE = "grpc/reflection/v1/reflection.proto"  # where upstream gRPC keeps it


def _v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The v1 reflection file, built from the v1alpha one by renaming its package."""
    alpha = reflection_pb2.DESCRIPTOR
    proto = descriptor_pb2.FileDescriptorProto()
    alpha.CopyToProto(proto)
    old, new = f".{alpha.package}.", ".grpc.reflection.v1."
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.options.Clear()  # v1alpha's are deprecated = true and v1alpha package names
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_multiple_files = True
    proto.options.java_outer_classname = "ServerReflectionProto"
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # set only on message and enum fields
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    return proto


def _private_pool(service_names: Iterable[str]) -> descriptor_pool.DescriptorPool:
    """A pool with the files of ``service_names`` (and their imports) plus the v1 file.

    A private pool leaves the process-wide default pool alone, so a library that later
    registers its own copy of the v1 file cannot clash with this one.
    """
    default = descriptor_pool.Default()
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.AddSerializedFile(proto.SerializeToString())
        added.add(file.name)

    for name in service_names:
        add(default.FindServiceByName(name).file)
    pool.AddSerializedFile(_v1_file_descriptor().SerializeToString())
    return pool


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection v1 and v1alpha for ``service_names`` (both reflection services added).

    Args:
        service_names: Fully qualified names of the services to list (in the default pool).
        server: The (not yet started) server.
    """
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    pool = _private_pool([*service_names, V1ALPHA_SERVICE_NAME])
    servicer = reflection.ReflectionServicer(names, pool=pool)
    handlers = {
        name: grpc.method_handlers_generic_handler(
            name,
            {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    servicer.ServerReflectionInfo,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                )
            },
        )
        for name in (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    }
    server.add_generic_rpc_handlers(tuple(handlers.values()))
