import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  InferenceService,
  type PredictResponseSchema,
  PredictResponseSchema as ResponseSchema,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { serviceDefinition, startGrpcServer } from '@ballast/grpc-kit';
import { saveModelFiles, selectBackend } from '@ballast/ml';
import { artifactManifest } from '@ballast/ml/artifact';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { Executor } from '../executor.js';
import { ModelPool } from '../model-pool.js';
import { Predictor } from '../predictor.js';
import { inferenceServices } from '../server.js';
import { DEFAULT_MAX_ROWS_PER_REQUEST, type ServingConfig } from '../serving-config.js';
import { benchModel } from './model.js';

/**
 * One side of the benchmark as its own process, so the load generator does not share its
 * event loop: `ballast` (the inference server with the bench model served twice, batched and
 * unbatched) or `bare` (a bare grpc-js server answering Predict with a response of the same
 * size at once). Prints {"port": N} when listening.
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
  const definition = serviceDefinition(InferenceService);
  const server = new Server();
  server.addService(definition, {
    Predict: (_call: unknown, callback: (e: null, r: unknown) => void) => callback(null, fixed),
    PredictStream: () => {},
    GetServingStatus: () => {},
  });
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
  const config = (max: number, timeoutUs: number): ServingConfig => ({
    batcher: {
      max_batch_size: max,
      max_queue_delay_microseconds: 0,
      preferred_batch_size: max > 1 ? [1, 8, 16, 32, 64].filter((s) => s <= max) : [],
      max_queue_size: 4096,
      default_timeout_microseconds: timeoutUs,
    },
    canaryPercent: 0,
    shadow: false,
    allowNonFinite: false,
    maxRowsPerRequest: DEFAULT_MAX_ROWS_PER_REQUEST,
  });
  const pool = new ModelPool(executor, config(64, 0), quiet);
  const timeoutUs = Number(process.env.BENCH_DEFAULT_TIMEOUT_US ?? 0);
  for (const [name, max] of [
    ['bench', 64],
    ['bench-nobatch', 1],
  ] as const) {
    const loaded = await pool.load({
      model: name,
      version: 1,
      digest,
      files,
      config: config(max, timeoutUs),
    });
    pool.setConfig(name, config(max, timeoutUs));
    pool.setAlias(name, 'production', loaded);
  }
  const predictor = new Predictor(pool, undefined, undefined, quiet);
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
  console.log(JSON.stringify({ port: server.port, backend: executor.backend?.backend }));
}
