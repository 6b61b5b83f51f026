"""Checks a gRPC health entry the way a Kubernetes gRPC probe does, from outside Node.

Stubs are generated at run time from the upstream health proto that Debian's grpc-proto
package ships, so this client shares no code with Ballast. The proto is copied under a
flat name first: generated at its own path, its module would shadow the `grpc` package.
Prints the status; exits 0 when SERVING.
usage: health_probe.py HOST:PORT [SERVICE]
"""
import importlib
import shutil
import sys
import tempfile

import grpc
from grpc_tools import protoc

UPSTREAM = "/usr/share/grpc-proto/grpc/health/v1/health.proto"


def main() -> int:
    target = sys.argv[1]
    service = sys.argv[2] if len(sys.argv) > 2 else ""
    out = tempfile.mkdtemp(prefix="health-stubs-")
    shutil.copy(UPSTREAM, f"{out}/upstream_health.proto")
    if protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}",
                    f"{out}/upstream_health.proto"]) != 0:
        print("protoc failed", file=sys.stderr)
        return 2
    sys.path.insert(0, out)
    health_pb2 = importlib.import_module("upstream_health_pb2")
    health_pb2_grpc = importlib.import_module("upstream_health_pb2_grpc")
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(name)
    return 0 if name == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
