import { RowSchema } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { create } from '@bufbuild/protobuf';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsToInputs } from './inputs.js';
import { Predictor } from './predictor.js';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  failure,
  startTestInference,
  type TestInference,
} from './test-support.js';

// What a service's telemetry sets up (a provider with the async context manager), with the
// spans kept in memory: grpc-kit's adapter starts each call's server span on it.
const exporter = new InMemorySpanExporter();
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();

const PREDICT = 'grpc.ballast.inference.v1.InferenceService/Predict';
const PREDICT_STREAM = 'grpc.ballast.inference.v1.InferenceService/PredictStream';
const MODEL_INFER = 'grpc.inference.GRPCInferenceService/ModelInfer';
const row = { features: Object.fromEntries(FEATURES.map((f, i) => [f, i + 1])) };

let t: TestInference;

beforeAll(async () => {
  t = await startTestInference();
  t.registry.addVersion('demand', 1, await demandModelFiles(1));
  t.registry.setAlias('demand', 'production', 1);
  await eventually(() => t.pool.find('demand')?.aliases.get('production'), 'demand v1 serving');
});

afterAll(async () => {
  await t?.close();
});

const finished = (name: string, requestId: string) =>
  eventually(
    () =>
      exporter
        .getFinishedSpans()
        .find((s) => s.name === name && s.attributes['inference.request_id'] === requestId),
    `the ${name} span of ${requestId}`,
  );
const inTrace = (span: ReadableSpan) =>
  exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === span.spanContext().traceId);
const batchOf = (span: ReadableSpan) => {
  const ids = new Set(span.links.map((l) => l.context.spanId));
  return exporter
    .getFinishedSpans()
    .find((s) => s.name === 'inference.batch' && ids.has(s.spanContext().spanId));
};

describe("a unary call's request is traced on the call's server span", () => {
  it('Predict: the server span carries the request, linked to its batch; no span of its own', async () => {
    await t.client.predict({ model: 'demand', rows: [row], requestId: 'unary-1' });
    const server = await finished(PREDICT, 'unary-1');
    expect(server.kind).toBe(SpanKind.SERVER);
    expect(server.attributes).toMatchObject({
      'inference.model': 'demand',
      'inference.api': 'predict',
      'inference.version': 1,
      'inference.alias': 'production',
      'inference.batch_size': 1,
      'rpc.grpc.status_code': 0,
    });
    const batch = batchOf(server);
    expect(batch?.links.map((l) => l.context.spanId)).toContain(server.spanContext().spanId);
    expect(inTrace(server).map((s) => s.name)).not.toContain('inference.predict');
  });

  it('ModelInfer: the same, for the Open Inference Protocol', async () => {
    await t.oip.modelInfer({
      modelName: 'demand',
      id: 'unary-2',
      inputs: [
        { name: 'features', datatype: 'FP32', shape: [1n, 3n], contents: { fp32Contents: [1, 2, 3] } },
      ],
    });
    const server = await finished(MODEL_INFER, 'unary-2');
    expect(server.attributes).toMatchObject({ 'inference.api': 'oip', 'inference.version': 1 });
    expect(batchOf(server)).toBeDefined();
    expect(inTrace(server).map((s) => s.name)).not.toContain('inference.predict');
  });

  it("a caller's error leaves the server span's status to the adapter (unset), not ERROR", async () => {
    await failure(t.client.predict({ model: 'nope', rows: [row], requestId: 'unary-3' }));
    const server = await finished(PREDICT, 'unary-3');
    expect(server.attributes['rpc.grpc.status_code']).toBe(5);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
  });
});

describe('a call answered before its request runs', () => {
  it('leaves the request a span of its own under it, since an ended span records nothing', async () => {
    // As when a call is cancelled or times out during its entity lookup: the adapter has
    // answered it and ended its span by the time the request reaches the predictor.
    const call = trace.getTracer('test').startSpan(PREDICT, { kind: SpanKind.SERVER });
    call.end();
    const quiet = { info() {}, warn() {}, error() {} };
    const predictor = new Predictor(t.pool, undefined, undefined, quiet);
    const rows = [create(RowSchema, row)];
    await predictor.predict({
      api: 'predict',
      model: 'demand',
      requestId: 'late-1',
      span: call,
      build: (version, limits) => rowsToInputs(rows, version, limits),
    });
    const own = await finished('inference.predict', 'late-1');
    expect(own.parentSpanContext?.spanId).toBe(call.spanContext().spanId);
    expect(own.attributes).toMatchObject({ 'inference.version': 1, 'inference.alias': 'production' });
    expect(batchOf(own)).toBeDefined();
  });
});

describe("a stream's requests share one call", () => {
  it('each request gets an inference.predict span of its own, a child of the call, linked to its batch', async () => {
    async function* requests() {
      for (const requestId of ['stream-1', 'stream-2']) {
        yield { request: { model: 'demand', rows: [row], requestId } };
      }
    }
    for await (const _ of t.client.predictStream(requests()));
    const spans = [
      await finished('inference.predict', 'stream-1'),
      await finished('inference.predict', 'stream-2'),
    ];
    const call = await eventually(
      () => exporter.getFinishedSpans().find((s) => s.name === PREDICT_STREAM),
      'the PredictStream server span',
    );
    for (const span of spans) {
      expect(span.parentSpanContext?.spanId).toBe(call.spanContext().spanId);
      expect(span.attributes).toMatchObject({ 'inference.api': 'predict', 'inference.version': 1 });
      expect(batchOf(span)).toBeDefined();
    }
    expect(call.attributes['inference.request_id']).toBeUndefined();
  });
});
