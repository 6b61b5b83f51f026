import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { GRPCInferenceService } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import {
  createClient,
  type GrpcServer,
  RpcError,
  type ServiceClient,
  startGrpcServer,
} from '@ballast/grpc-kit';
import { loadModelFromFiles, saveModelFiles, selectBackend, type TfModel } from '@ballast/ml';
import type { ArtifactFile } from '@ballast/ml/artifact';
import * as tf from '@tensorflow/tfjs';
import { ArtifactCache } from './artifact-cache.js';
import { DeploymentFollower } from './deployments.js';
import { Executor } from './executor.js';
import { inferenceMetrics } from './metrics.js';
import { ModelPool } from './model-pool.js';
import {
  DEFAULT_PREDICTION_LOG,
  type PredictionJob,
  PredictionLog,
  type PredictionLogOptions,
} from './prediction-log.js';
import { Predictor } from './predictor.js';
import { inferenceServices } from './server.js';
import { DEFAULT_INLINE_MAX_US, DEFAULT_MAX_ROWS_PER_REQUEST, type ServingConfig } from './serving-config.js';
import { TestRegistry } from './test-registry.js';

export const FEATURES = ['price', 'promo', 'temperature'];

/**
 * A small demand model: 3 named features -> `prediction`, weights fixed by `seed` so that
 * versions answer differently. `featureNames` in its metadata lets Predict take named features.
 */
export async function demandModelFiles(seed: number, hidden = 8): Promise<ArtifactFile[]> {
  const input = tf.input({ shape: [FEATURES.length], name: 'features' });
  const h = tf.layers
    .dense({
      units: hidden,
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
      name: 'hidden',
    })
    .apply(input) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({
      units: 1,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      biasInitializer: tf.initializers.constant({ value: seed }),
      name: 'prediction',
    })
    .apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setUserDefinedMetadata({ featureNames: { features: FEATURES } });
  const files = await saveModelFiles(model);
  model.dispose();
  return files;
}

/** The reference: the same artifact's model.predict in this process (wasm, like the worker). */
export async function referenceModel(files: ArtifactFile[]): Promise<TfModel> {
  await selectBackend('wasm');
  return loadModelFromFiles(files);
}

export function referencePredict(model: TfModel, rows: number[][]): number[] {
  return tf.tidy(() => Array.from((model.predict(tf.tensor2d(rows)) as tf.Tensor).dataSync()));
}

export const DEFAULTS: ServingConfig = {
  batcher: {
    max_batch_size: 32,
    max_queue_delay_microseconds: 0,
    preferred_batch_size: [],
    max_queue_size: 1024,
    default_timeout_microseconds: 0,
  },
  canaryPercent: 0,
  shadow: false,
  allowNonFinite: false,
  maxRowsPerRequest: DEFAULT_MAX_ROWS_PER_REQUEST,
  inlineMaxUs: DEFAULT_INLINE_MAX_US,
};

export interface TestInference {
  registry: TestRegistry;
  address: string;
  client: ServiceClient<typeof InferenceService>;
  oip: ServiceClient<typeof GRPCInferenceService>;
  pool: ModelPool;
  executor: Executor;
  follower: DeploymentFollower;
  predictionLog: PredictionLog;
  jobs: PredictionJob[];
  close(): Promise<void>;
}

export async function startTestInference(
  options: {
    sink?: (jobs: PredictionJob[]) => Promise<unknown>;
    log?: Partial<PredictionLogOptions>;
    /** Follow this registry instead of starting a test registry. */
    registryAddress?: string;
  } = {},
): Promise<TestInference> {
  const registry = await new TestRegistry().start();
  const registryAddress = options.registryAddress ?? registry.address;
  const dir = await mkdtemp(join(tmpdir(), 'ballast-inference-test-'));
  const quiet = { info() {}, warn() {}, error() {} };
  const metrics = inferenceMetrics();
  const executor = await Executor.start('wasm');
  const pool = new ModelPool(executor, DEFAULTS, quiet, metrics);
  const jobs: PredictionJob[] = [];
  const predictionLog = new PredictionLog(
    options.sink ??
      (async (batch) => {
        jobs.push(...batch);
      }),
    { ...DEFAULT_PREDICTION_LOG, flushIntervalMs: 20, ...options.log },
    metrics,
    quiet,
  );
  predictionLog.start();
  const registryClient = createClient(RegistryService, { address: registryAddress, deadlineMs: 30_000 });
  const follower = new DeploymentFollower(
    registryClient,
    pool,
    new ArtifactCache(join(dir, 'cache')),
    quiet,
    {
      models: [],
      defaults: DEFAULTS,
      retryMs: 50,
    },
  );
  follower.start();
  const predictor = new Predictor(pool, predictionLog, metrics, quiet);
  const server: GrpcServer = await startGrpcServer({
    services: inferenceServices({ pool, predictor, follower, predictionLog, ready: () => follower.synced }),
    host: '127.0.0.1',
    port: 0,
    log: quiet,
    shutdownGraceMs: 500,
  });
  server.setReady(true);
  const address = `127.0.0.1:${server.port}`;
  const client = createClient(InferenceService, { address, deadlineMs: 30_000 });
  const oip = createClient(GRPCInferenceService, { address, deadlineMs: 30_000 });
  return {
    registry,
    address,
    client,
    oip,
    pool,
    executor,
    follower,
    predictionLog,
    jobs,
    async close() {
      client.close();
      oip.close();
      await server.shutdown();
      await follower.stop();
      registryClient.close();
      await predictionLog.close();
      await executor.close();
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a value (bounded), for state that settles asynchronously. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  attempts = 1500,
): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The error a call failed with (and a test failure if it succeeded). */
export async function failure(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RpcError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}
