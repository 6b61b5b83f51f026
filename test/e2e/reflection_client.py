"""Checks a server's gRPC reflection the way strict outside tools (grpcurl, grpcui, Postman) use it.

Nothing here is generated from Ballast's protos: the reflection messages come from the upstream
reflection.proto that Debian's grpc-proto package ships (compiled in memory to a descriptor set,
no Python stubs), and every Ballast type is built from what the server answers.

For reflection v1 and v1alpha, on one stream each, it
  - lists the services,
  - asks for the file of each service; every answer must carry the file and, once per stream,
    each file it imports (transitively), and the two versions must serve the same files,
  - checks that unknown symbols, files and extensions come back as error_response NOT_FOUND
    while the stream goes on;
then builds the files into a fresh strict DescriptorPool (dependency order: a missing import,
a malformed map entry or a bad type reference fails), checks every method's types resolve and
that type references are fully qualified, as protoc writes them, and finally makes each
--call with dynamic messages only, printing the decoded answer as JSON.

usage: reflection_client.py HOST:PORT [--call /package.Service/Method REQUEST_JSON]...
Exits 0 when everything holds; otherwise prints FAIL: <reason> and exits 1.
"""
import os
import queue
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_tools import protoc

UPSTREAM = "/usr/share/grpc-proto"
VERSIONS = ("v1", "v1alpha")
NOT_FOUND = 5


class Failure(Exception):
    pass


def message_class(descriptor):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def reflection_types():
    """The upstream reflection messages of each version, from a descriptor set protoc makes."""
    out = tempfile.mkdtemp(prefix="reflection-proto-")
    set_path = os.path.join(out, "reflection.pb")
    files = [f"grpc/reflection/{v}/reflection.proto" for v in VERSIONS]
    if protoc.main(["protoc", f"-I{UPSTREAM}", f"--descriptor_set_out={set_path}", *files]) != 0:
        raise Failure("protoc could not compile the upstream reflection protos")
    with open(set_path, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.AddSerializedFile(file.SerializeToString())
    return {
        v: (
            message_class(pool.FindMessageTypeByName(f"grpc.reflection.{v}.ServerReflectionRequest")),
            message_class(pool.FindMessageTypeByName(f"grpc.reflection.{v}.ServerReflectionResponse")),
        )
        for v in VERSIONS
    }


class ReflectionStream:
    """One ServerReflectionInfo stream, driven request by request."""

    def __init__(self, channel, version, types):
        self.version = version
        self.request_type, response_type = types
        self.requests = queue.Queue()
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        self.responses = call(iter(self.requests.get, None), timeout=60)
        self.sent = {}  # file name -> serialized FileDescriptorProto, everything sent on this stream

    def ask(self, **fields):
        request = self.request_type(host="", **fields)
        self.requests.put(request)
        response = next(self.responses)
        if response.original_request != request:
            raise Failure(f"{self.version}: original_request does not echo {fields}")
        return response

    def files(self, what, **fields):
        """The files of a file_by_filename / file_containing_symbol answer, checked for repeats."""
        response = self.ask(**fields)
        kind = response.WhichOneof("message_response")
        if kind == "error_response":
            e = response.error_response
            raise Failure(f"{self.version}: {what}: error {e.error_code} {e.error_message!r}")
        if kind != "file_descriptor_response":
            raise Failure(f"{self.version}: {what}: answered {kind}")
        names = []
        for i, raw in enumerate(response.file_descriptor_response.file_descriptor_proto):
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            # The asked-for file comes first, always; the files it imports come once a stream.
            if i > 0 and proto.name in self.sent:
                raise Failure(f"{self.version}: {what}: {proto.name} was sent again on the same stream")
            if proto.name in names:
                raise Failure(f"{self.version}: {what}: {proto.name} twice in one answer")
            if proto.name in self.sent and self.sent[proto.name] != raw:
                raise Failure(f"{self.version}: {what}: {proto.name} changed between answers")
            self.sent[proto.name] = raw
            names.append(proto.name)
        if not names:
            raise Failure(f"{self.version}: {what}: no files")
        return names

    def expect_not_found(self, what, **fields):
        response = self.ask(**fields)
        if response.WhichOneof("message_response") != "error_response":
            raise Failure(f"{self.version}: {what}: expected error_response NOT_FOUND, got {response}")
        e = response.error_response
        if e.error_code != NOT_FOUND or not e.error_message:
            raise Failure(f"{self.version}: {what}: error {e.error_code} {e.error_message!r}, expected NOT_FOUND")

    def close(self):
        self.requests.put(None)
        for _ in self.responses:
            pass


def explore(channel, version, types):
    stream = ReflectionStream(channel, version, types)
    listed = stream.ask(list_services="")
    if listed.WhichOneof("message_response") != "list_services_response":
        raise Failure(f"{version}: list_services answered {listed}")
    services = sorted(s.name for s in listed.list_services_response.service)
    if not services:
        raise Failure(f"{version}: no services listed")
    for service in services:
        names = stream.files(f"symbol {service}", file_containing_symbol=service)
        root = descriptor_pb2.FileDescriptorProto.FromString(stream.sent[names[0]])
        package = f"{root.package}." if root.package else ""
        if service not in {package + s.name for s in root.service}:
            raise Failure(f"{version}: the first file for {service}, {root.name}, does not declare it")
    # Each file's imports were all sent on this stream, without being asked for by name.
    for name, raw in stream.sent.items():
        for dependency in descriptor_pb2.FileDescriptorProto.FromString(raw).dependency:
            if dependency not in stream.sent:
                raise Failure(f"{version}: {name} imports {dependency}, which the server never sent")
    for name in list(stream.sent):
        if stream.files(f"file {name}", file_by_filename=name)[0] != name:
            raise Failure(f"{version}: file_by_filename {name} answered another file first")
    stream.expect_not_found("unknown symbol", file_containing_symbol="ballast.no_such.v1.Thing")
    stream.expect_not_found("unknown file", file_by_filename="ballast/no_such/v1/thing.proto")
    extension_request = types[0].DESCRIPTOR.fields_by_name["file_containing_extension"].message_type
    stream.expect_not_found(
        "unknown extension",
        file_containing_extension=message_class(extension_request)(
            containing_type=services[0], extension_number=536870000
        ),
    )
    again = stream.ask(list_services="")  # the stream outlived its errors
    if sorted(s.name for s in again.list_services_response.service) != services:
        raise Failure(f"{version}: list_services changed on the same stream")
    stream.close()
    return services, stream.sent


def dependency_order(files):
    ordered, seen = [], set()

    def visit(name, path):
        if name in seen:
            return
        if name in path:
            raise Failure(f"import cycle through {name}")
        for dependency in files[name].dependency:
            visit(dependency, path | {name})
        seen.add(name)
        ordered.append(name)

    for name in sorted(files):
        visit(name, frozenset())
    return ordered


def check_messages(file, scope, messages):
    for message in messages:
        full = f"{scope}.{message.name}"
        entries = {n.name for n in message.nested_type if n.options.map_entry}
        for field in message.field:
            if field.type_name and not field.type_name.startswith("."):
                raise Failure(f"{file.name}: {full}.{field.name} refers to {field.type_name!r}, not a full name")
            if field.type_name.split(".")[-1] in entries:
                entries.discard(field.type_name.split(".")[-1])
        if entries:
            raise Failure(f"{file.name}: {full} declares map entries no map field uses: {sorted(entries)}")
        check_messages(file, full, message.nested_type)


def build_pool(raw_files):
    files = {name: descriptor_pb2.FileDescriptorProto.FromString(raw) for name, raw in raw_files.items()}
    pool = descriptor_pool.DescriptorPool()
    order = dependency_order(files)
    for name in order:
        file = files[name]
        top = [m for m in file.message_type if m.options.map_entry]
        if top:
            raise Failure(f"{name}: top-level message {top[0].name} is marked map_entry")
        check_messages(file, f".{file.package}" if file.package else "", file.message_type)
        for service in file.service:
            for method in service.method:
                for t in (method.input_type, method.output_type):
                    if not t.startswith("."):
                        raise Failure(f"{name}: {service.name}.{method.name} refers to {t!r}, not a full name")
        try:
            pool.AddSerializedFile(raw_files[name])
        except Exception as err:  # the pool's own words: a missing import, a bad map entry...
            raise Failure(f"a strict DescriptorPool refuses {name}: {err}") from err
    return pool, order


def call(channel, pool, path, request_json):
    service_name, method_name = path.strip("/").rsplit("/", 1)
    method = pool.FindServiceByName(service_name).methods_by_name[method_name]
    request_type, response_type = message_class(method.input_type), message_class(method.output_type)
    request = json_format.Parse(request_json, request_type())
    invoke = channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    response = invoke(request, timeout=30)
    if not isinstance(response, response_type):
        raise Failure(f"{path}: the answer did not decode as {method.output_type.full_name}")
    return json_format.MessageToJson(response, indent=None, sort_keys=True)


def main(argv):
    target, rest = argv[0], argv[1:]
    calls = []
    while rest:
        if rest[0] != "--call" or len(rest) < 3:
            raise Failure("usage: reflection_client.py HOST:PORT [--call /package.Service/Method JSON]...")
        calls.append((rest[1], rest[2]))
        rest = rest[3:]
    types = reflection_types()
    with grpc.insecure_channel(target) as channel:
        services, files = explore(channel, "v1", types["v1"])
        alpha_services, alpha_files = explore(channel, "v1alpha", types["v1alpha"])
        if alpha_services != services or alpha_files != files:
            raise Failure("v1alpha answers differ from v1")
        pool, order = build_pool(files)
        for service in services:
            descriptor = pool.FindServiceByName(service)
            for method in descriptor.methods:
                message_class(method.input_type)
                message_class(method.output_type)
            print(f"{service}: {len(descriptor.methods)} methods, from {descriptor.file.name}")
        print(f"files ({len(order)}, dependency order): {' '.join(order)}")
        for path, request_json in calls:
            print(f"{path} -> {call(channel, pool, path, request_json)}")
    print("OK: v1 and v1alpha agree; a strict DescriptorPool accepts every file")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Failure as failure:
        print(f"FAIL: {failure}")
        sys.exit(1)
    except json_format.ParseError as err:
        print(f"FAIL: a request does not parse: {err}")
        sys.exit(1)
    except grpc.RpcError as err:
        print(f"FAIL: RPC {err.code().name}: {err.details()}")
        sys.exit(1)
