"""An Open Inference Protocol v2 client from outside Node (Debian's python3-grpcio).

Stubs are generated at run time from Ballast's proto/inference/grpc_predict_v2.proto (the
published protocol's messages and field numbers; see oip_stubs.py); the client shares no code
with Ballast. Calls ModelInfer twice, with typed and with raw contents, and prints both answers
as JSON.
usage: oip_client.py HOST:PORT PROTO_FILE MODEL
"""
import json
import os
import struct
import sys

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import oip_stubs  # noqa: E402


def main() -> int:
    target, proto, model = sys.argv[1], sys.argv[2], sys.argv[3]
    pb, _, stubs = oip_stubs.load(os.path.dirname(os.path.dirname(os.path.abspath(proto))))
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
