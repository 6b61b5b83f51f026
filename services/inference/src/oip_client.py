"""An Open Inference Protocol v2 client from outside Node (Debian's python3-grpcio).

Stubs are generated at run time from Ballast's proto/inference/grpc_predict_v2.proto (the
published protocol's messages and field numbers); the client shares no code with Ballast.
Calls ModelInfer twice, with typed and with raw contents, and prints both answers as JSON.
usage: oip_client.py HOST:PORT PROTO_FILE MODEL
"""
import importlib
import json
import shutil
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc


def main() -> int:
    target, proto, model = sys.argv[1], sys.argv[2], sys.argv[3]
    out = tempfile.mkdtemp(prefix="oip-stubs-")
    shutil.copy(proto, f"{out}/oip_v2.proto")
    if protoc.main(["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", f"{out}/oip_v2.proto"]) != 0:
        print("protoc failed", file=sys.stderr)
        return 2
    sys.path.insert(0, out)
    pb = importlib.import_module("oip_v2_pb2")
    stubs = importlib.import_module("oip_v2_pb2_grpc")
    rows = [[10.0, 1.0, 21.5], [12.5, 0.0, 18.0]]
    flat = [v for row in rows for v in row]
    with grpc.insecure_channel(target) as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        ready = stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        typed_input = pb.ModelInferRequest.InferInputTensor(
            name="features", datatype="FP32", shape=[2, 3], contents=pb.InferTensorContents(fp32_contents=flat)
        )
        typed = stub.ModelInfer(pb.ModelInferRequest(model_name=model, inputs=[typed_input]), timeout=10)
        raw_input = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=[2, 3])
        raw = stub.ModelInfer(
            pb.ModelInferRequest(model_name=model, inputs=[raw_input], raw_input_contents=[struct.pack("<6f", *flat)]),
            timeout=10,
        )
        raw_values = list(struct.unpack("<2f", raw.raw_output_contents[0]))
        try:
            stub.ModelInfer(pb.ModelInferRequest(model_name="no-such-model", inputs=[typed_input]), timeout=10)
            missing = "OK"
        except grpc.RpcError as error:
            missing = error.code().name
    print(json.dumps({
        "ready": ready,
        "version": typed.model_version,
        "typed": list(typed.outputs[0].contents.fp32_contents),
        "shape": list(typed.outputs[0].shape),
        "raw": raw_values,
        "missing": missing,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
