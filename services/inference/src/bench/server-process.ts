import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  InferenceService,
  type PredictResponseSchema,
  PredictResponseSchema as ResponseSchema,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import {
  GRPCInferenceService,
  ModelInferResponseSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { serviceDefinition, startGrpcServer } from '@ballast/grpc-kit';
import { saveModelFiles, selectBackend } from '@ballast/ml';
import { artifactManifest } from '@ballast/ml/artifact';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { Executor } from '../executor.js';
import { inferenceMetrics } from '../metrics.js';
import { ModelPool } from '../model-pool.js';
import { Predictor } from '../predictor.js';
import { inferenceServices } from '../server.js';
import {
  DEFAULT_INLINE_MAX_US,
  DEFAULT_MAX_ROWS_PER_REQUEST,
  type ServingConfig,
} from '../serving-config.js';
import { benchModel } from './model.js';

/**
 * One side of the benchmark as its own process, so the load generator does not share its
 * event loop: `ballast` (the inference server with the bench model served twice, batched and
 * unbatched) or `bare` (a bare grpc-js server answering Predict with a response of the same
 * size at once). Prints {"port": N} when listening.
 *
 * The inference server records its metrics as main.ts does (a service always serves /metrics),
 * so that a row with tracing on differs from its untraced row by tracing alone: without them,
 * the SDK that tracing starts turned grpc-kit's per-call metrics on in the traced server only.
 * BENCH_METRICS=0 leaves the service's own metrics out.
 */
const mode = process.argv[2] ?? 'ballast';
const quiet = { info() {}, warn() {}, error() {} };

if (mode === 'bare') {
  const response: MessageInitShape<typeof PredictResponseSchema> = {
    model: 'bench',
    version: 1,
    alias: 'production',
    backend: 'wasm',
    predictions: [{ outputs: { prediction: { values: [0.123456] } } }],
    timings: { queueUs: 100n, computeUs: 100n, totalUs: 200n, batchSize: 1 },
  };
  const fixed = create(ResponseSchema, response);
  // ModelInfer answered with one fp32 value, typed or raw like the request.
  const typed = create(ModelInferResponseSchema, {
    modelName: 'bench',
    modelVersion: '1',
    outputs: [
      { name: 'prediction', datatype: 'FP32', shape: [1n, 1n], contents: { fp32Contents: [0.123456] } },
    ],
  });
  const raw = create(ModelInferResponseSchema, {
    modelName: 'bench',
    modelVersion: '1',
    outputs: [{ name: 'prediction', datatype: 'FP32', shape: [1n, 1n] }],
    rawOutputContents: [new Uint8Array(new Float32Array([0.123456]).buffer)],
  });
  type Callback = (e: null, r: unknown) => void;
  const unused = () => {};
  const server = new Server();
  server.addService(serviceDefinition(InferenceService), {
    Predict: (_call: unknown, callback: Callback) => callback(null, fixed),
    PredictStream: unused,
    GetServingStatus: unused,
  });
  server.addService(
    serviceDefinition(GRPCInferenceService),
    Object.fromEntries(
      GRPCInferenceService.methods.map((m) => [
        m.name,
        m.name === 'ModelInfer'
          ? (call: { request: { rawInputContents: unknown[] } }, callback: Callback) =>
              callback(null, call.request.rawInputContents.length > 0 ? raw : typed)
          : unused,
      ]),
    ),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  process.on('message', (message) => {
    if (message === 'exit') process.exit(0);
  });
  console.log(JSON.stringify({ port }));
} else {
  const backend = process.env.BALLAST_TF_BACKEND ?? 'wasm';
  await selectBackend('cpu');
  const model = benchModel();
  const files = await saveModelFiles(model);
  const digest = artifactManifest(files).digest;
  const executor = await Executor.start(backend);
  const config = (max: number, timeoutUs: number, delayUs = 0, objectiveMs = 0): ServingConfig => ({
    batcher: {
      max_batch_size: max,
      max_queue_delay_microseconds: delayUs,
      preferred_batch_size: [],
      max_queue_size: 4096,
      default_timeout_microseconds: timeoutUs,
      latency_objective_ms: objectiveMs,
    },
    canaryPercent: 0,
    shadow: false,
    allowNonFinite: false,
    maxRowsPerRequest: DEFAULT_MAX_ROWS_PER_REQUEST,
    // BENCH_INLINE_MAX_US=0: every model on the worker (the default: the service's).
    inlineMaxUs: Number(process.env.BENCH_INLINE_MAX_US ?? DEFAULT_INLINE_MAX_US),
  });
  const metrics = process.env.BENCH_METRICS === '0' ? undefined : inferenceMetrics();
  const pool = new ModelPool(executor, config(64, 0), quiet, metrics);
  const timeoutUs = Number(process.env.BENCH_DEFAULT_TIMEOUT_US ?? 0);
  // bench: batched (Triton's default, no queue delay); bench-nobatch: batching off;
  // bench-d<us>: a fixed queue delay; bench-tuned: the delay tuned from a p99 objective.
  const objectiveMs = Number(process.env.BENCH_LATENCY_OBJECTIVE_MS ?? 20);
  const delays = (process.env.BENCH_FIXED_DELAYS_US ?? '').split(',').filter(Boolean).map(Number);
  const models: [string, ServingConfig][] = [
    ['bench', config(64, timeoutUs)],
    ['bench-nobatch', config(1, timeoutUs)],
    ...delays.map((us): [string, ServingConfig] => [`bench-d${us}`, config(64, timeoutUs, us)]),
    ['bench-tuned', config(64, timeoutUs, 0, objectiveMs)],
  ];
  // What ran each model (js: inline on the event loop, or the worker's backend): the bench prints it.
  const engines: Record<string, string> = {};
  for (const [name, served] of models) {
    const loaded = await pool.load({ model: name, version: 1, digest, files, config: served });
    engines[name] = loaded.engine;
    pool.setConfig(name, served);
    pool.setAlias(name, 'production', loaded);
  }
  const predictor = new Predictor(pool, undefined, metrics, quiet);
  const server = await startGrpcServer({
    services: inferenceServices({ pool, predictor, ready: () => true }),
    host: '127.0.0.1',
    port: 0,
    log: quiet,
  });
  server.setReady(true);
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  process.on('message', (message) => {
    // 'exit': a clean exit, so that a --cpu-prof run writes its profile.
    if (message === 'exit') process.exit(0);
    process.send?.({ p99Ms: delay.percentile(99) / 1e6, maxMs: delay.max / 1e6 });
  });
  console.log(JSON.stringify({ port: server.port, backend: executor.backend?.backend, engines }));
}
