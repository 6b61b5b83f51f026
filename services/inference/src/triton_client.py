"""A Triton-style client from outside Node (Debian's python3-grpcio), over Ballast's inference.

The flow a Triton client runs against a server it does not know: ServerLive -> RepositoryIndex
-> ModelConfig (max_batch_size, tensors, dynamic batching) -> ModelInfer of ROWS rows in one
request -> ModelStatistics (before and after) -> ModelStreamInfer of 100 requests, request 37
deliberately bad. Stubs come from proto/inference/*.proto (oip_stubs.py); nothing is shared
with Ballast. Prints what it saw as JSON.
usage: triton_client.py HOST:PORT PROTO_ROOT MODEL ROWS
"""
import json
import sys

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import oip_stubs  # noqa: E402

STREAM_REQUESTS = 100
BAD_REQUEST = 37


def row(i):
    """The i-th input row (the test computes the same rows for its reference)."""
    return [(i % 97) * 0.37, float(i % 2), float((i * 7) % 41 - 10)]


def duration(d):
    return {"count": d.count, "ns": d.ns}


def statistics(stub, pb, model):
    response = stub.ModelStatistics(pb.ModelStatisticsRequest(name=model), timeout=10)
    return [
        {
            "name": s.name,
            "version": s.version,
            "last_inference": s.last_inference,
            "inference_count": s.inference_count,
            "execution_count": s.execution_count,
            "success": duration(s.inference_stats.success),
            "fail": duration(s.inference_stats.fail),
            "queue": duration(s.inference_stats.queue),
            "compute_input": duration(s.inference_stats.compute_input),
            "compute_infer": duration(s.inference_stats.compute_infer),
            "compute_output": duration(s.inference_stats.compute_output),
        }
        for s in response.model_stats
    ]


def features(pb, rows):
    flat = [v for r in rows for v in r]
    return pb.ModelInferRequest.InferInputTensor(
        name="features", datatype="FP32", shape=[len(rows), 3], contents=pb.InferTensorContents(fp32_contents=flat)
    )


def main() -> int:
    target, proto_root, model, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pb, mc, stubs = oip_stubs.load(proto_root)
    out = {}
    with grpc.insecure_channel(target) as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        out["live"] = stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live

        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        out["index"] = [{"name": m.name, "version": m.version, "state": m.state, "reason": m.reason} for m in index.models]

        config = stub.ModelConfig(pb.ModelConfigRequest(name=model), timeout=10).config
        batching = config.dynamic_batching
        out["config"] = {
            "name": config.name,
            "platform": config.platform,
            "max_batch_size": config.max_batch_size,
            "input": [{"name": t.name, "data_type": mc.DataType.Name(t.data_type), "dims": list(t.dims)} for t in config.input],
            "output": [{"name": t.name, "data_type": mc.DataType.Name(t.data_type), "dims": list(t.dims)} for t in config.output],
            "scheduling": config.WhichOneof("scheduling_choice"),
            "preferred_batch_size": list(batching.preferred_batch_size),
            "max_queue_delay_microseconds": batching.max_queue_delay_microseconds,
            "max_queue_size": batching.default_queue_policy.max_queue_size,
            "timeout_action": mc.ModelQueuePolicy.TimeoutAction.Name(batching.default_queue_policy.timeout_action),
            "parameters": {k: v.string_value for k, v in config.parameters.items()},
        }

        before = statistics(stub, pb, model)
        rows = [row(i) for i in range(count)]
        response = stub.ModelInfer(pb.ModelInferRequest(model_name=model, id="big", inputs=[features(pb, rows)]), timeout=60)
        out["infer"] = {
            "id": response.id,
            "version": response.model_version,
            "shape": list(response.outputs[0].shape),
            "values": list(response.outputs[0].contents.fp32_contents),
        }
        out["statistics"] = {"before": before, "after": statistics(stub, pb, model)}

        def requests():
            for i in range(STREAM_REQUESTS):
                tensor = features(pb, [row(i)])
                if i == BAD_REQUEST:
                    tensor.datatype = "FP64"
                yield pb.ModelInferRequest(model_name=model, id=f"req-{i}", inputs=[tensor])

        answers = {}
        for answer in stub.ModelStreamInfer(requests(), timeout=60):
            result = answer.infer_response
            answers[result.id] = (
                {"error": answer.error_message}
                if answer.error_message
                else {"value": result.outputs[0].contents.fp32_contents[0], "version": result.model_version}
            )
        out["stream"] = answers
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
