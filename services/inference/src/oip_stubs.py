"""Python stubs of Ballast's proto/inference/*.proto, compiled at run time with grpc_tools.protoc.

The Open Inference Protocol v2 and Triton's extensions, with Triton's message and field names
and numbers: what a Triton or KServe client has on its side of the wire. No code is shared
with Ballast. load(PROTO_ROOT) returns (messages, model_config messages, service stubs).
"""
import glob
import importlib
import shutil
import sys
import tempfile

from grpc_tools import protoc


def load(proto_root):
    out = tempfile.mkdtemp(prefix="oip-stubs-")
    try:
        files = sorted(glob.glob(f"{proto_root}/inference/*.proto"))
        args = ["protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {files}")
        sys.path.insert(0, out)
        pb = importlib.import_module("inference.grpc_predict_v2_pb2")
        config = importlib.import_module("inference.model_config_pb2")
        stubs = importlib.import_module("inference.grpc_predict_v2_pb2_grpc")
        return pb, config, stubs
    finally:
        shutil.rmtree(out, ignore_errors=True)
