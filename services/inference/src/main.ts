// The inference service: gRPC predictions with dynamic batching, hot swap and load shedding.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { join } from 'node:path';
import { addrConfig, commonConfig, int, loadConfig, oneOf, serviceConfig, str } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, runMain, runService } from '@ballast/grpc-kit';

// Not imported from @ballast/ml: that would load TensorFlow.js on the gRPC thread too.
const BACKEND_PREFERENCES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;

import { connectRedis } from '@ballast/queue';
import { createLogger } from '@ballast/telemetry';
import { ArtifactCache } from './artifact-cache.js';
import { DeploymentFollower } from './deployments.js';
import { Executor } from './executor.js';
import { inferenceMetrics } from './metrics.js';
import { ModelPool } from './model-pool.js';
import { OnlineFeatures } from './online-features.js';
import { packedLookupClient } from './packed-lookup.js';
import { DEFAULT_PREDICTION_LOG, PredictionLog, predictionQueue, queueSink } from './prediction-log.js';
import { Predictor } from './predictor.js';
import { inferenceServices } from './server.js';
import {
  DEFAULT_INLINE_MAX_US,
  DEFAULT_MAX_ROWS_PER_REQUEST,
  parseSizes,
  type ServingConfig,
} from './serving-config.js';

runMain(async () => {
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('inference'),
    ...addrConfig('registry'),
    // Entity-key lookups in Predict read the feature service's online store.
    ...addrConfig('feature'),
    BALLAST_TF_BACKEND: oneOf(BACKEND_PREFERENCES).default('auto'),
    /** Comma-separated model names to serve; unset: every model with a production or candidate alias. */
    BALLAST_INFERENCE_MODELS: str().optional(),
    /** Where downloaded artifacts are cached by digest; default <BALLAST_DATA_DIR>/inference/artifacts. */
    BALLAST_INFERENCE_CACHE_DIR: str().optional(),
    BALLAST_INFERENCE_MAX_BATCH_SIZE: int({ min: 1, max: 65_536 }).default(64),
    BALLAST_INFERENCE_MAX_QUEUE_DELAY_US: int({ min: 0 }).default(0),
    BALLAST_INFERENCE_PREFERRED_BATCH_SIZES: str().optional(),
    BALLAST_INFERENCE_MAX_QUEUE_SIZE: int({ min: 1 }).default(2048),
    BALLAST_INFERENCE_DEFAULT_TIMEOUT_US: int({ min: 0 }).default(0),
    /** The most rows one request may carry (larger than max_batch_size: split into batches). */
    BALLAST_INFERENCE_MAX_ROWS_PER_REQUEST: int({ min: 1, max: 10_000_000 }).default(
      DEFAULT_MAX_ROWS_PER_REQUEST,
    ),
    /** Dense-chain models whose full batch runs within this many us run inline (0: always on the worker). */
    BALLAST_INFERENCE_INLINE_MAX_US: int({ min: 0, max: 1_000_000 }).default(DEFAULT_INLINE_MAX_US),
    /** Percent of requests written to the prediction log (0-100). */
    BALLAST_INFERENCE_LOG_SAMPLE_PERCENT: int({ min: 0, max: 100 }).default(100),
    BALLAST_INFERENCE_LOG_BUFFER: int({ min: 1 }).default(DEFAULT_PREDICTION_LOG.maxBuffer),
  });
  const log = createLogger({ service: 'inference', level: config.BALLAST_LOG_LEVEL });
  const metrics = inferenceMetrics();
  const executor = await Executor.start(config.BALLAST_TF_BACKEND);
  const backend = executor.backend;
  log.info(
    { backend: backend?.backend, reason: backend?.reason, tfjs: backend?.tfjsVersion },
    `TensorFlow.js backend: ${backend?.backend}`,
  );
  metrics.backend.addCallback((result) => result.observe(1, { backend: backend?.backend ?? 'unknown' }));

  const defaults: ServingConfig = {
    batcher: {
      max_batch_size: config.BALLAST_INFERENCE_MAX_BATCH_SIZE,
      max_queue_delay_microseconds: config.BALLAST_INFERENCE_MAX_QUEUE_DELAY_US,
      preferred_batch_size: parseSizes(config.BALLAST_INFERENCE_PREFERRED_BATCH_SIZES, []),
      max_queue_size: config.BALLAST_INFERENCE_MAX_QUEUE_SIZE,
      default_timeout_microseconds: config.BALLAST_INFERENCE_DEFAULT_TIMEOUT_US,
    },
    canaryPercent: 0,
    shadow: false,
    allowNonFinite: false,
    maxRowsPerRequest: config.BALLAST_INFERENCE_MAX_ROWS_PER_REQUEST,
    inlineMaxUs: config.BALLAST_INFERENCE_INLINE_MAX_US,
  };
  const pool = new ModelPool(executor, defaults, log, metrics);

  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const predictions = predictionQueue(config.BALLAST_REDIS_URL);
  const predictionLog = new PredictionLog(
    queueSink(predictions.queue),
    {
      ...DEFAULT_PREDICTION_LOG,
      sampleRate: config.BALLAST_INFERENCE_LOG_SAMPLE_PERCENT / 100,
      maxBuffer: config.BALLAST_INFERENCE_LOG_BUFFER,
    },
    metrics,
    log,
  );
  predictionLog.start();

  const registry = createClient(RegistryService, {
    address: config.BALLAST_REGISTRY_ADDR,
    authToken: config.BALLAST_AUTH_TOKEN,
    maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
  });
  const follower = new DeploymentFollower(
    registry,
    pool,
    new ArtifactCache(
      config.BALLAST_INFERENCE_CACHE_DIR ?? join(config.BALLAST_DATA_DIR, 'inference', 'artifacts'),
    ),
    log,
    {
      models: (config.BALLAST_INFERENCE_MODELS ?? '')
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean),
      defaults,
    },
  );
  follower.start();
  const predictor = new Predictor(pool, predictionLog, metrics, log);
  // Connects on the first entity lookup: inference serves rows without the feature service.
  const featureOptions = {
    address: config.BALLAST_FEATURE_ADDR,
    authToken: config.BALLAST_AUTH_TOKEN,
    maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
  };
  const feature = createClient(FeatureService, featureOptions);
  const featureLookup = packedLookupClient(featureOptions);

  await runService({
    name: 'inference',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_INFERENCE_GRPC_PORT,
      services: inferenceServices({
        pool,
        predictor,
        follower,
        predictionLog,
        onlineFeatures: new OnlineFeatures(feature, featureLookup.lookup),
        ready: () => follower.synced,
      }),
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_INFERENCE_HTTP_PORT },
    dependencies: [
      {
        name: 'models',
        check: async () => {
          if (!follower.synced) throw new Error('loading the deployed models');
        },
      },
      { name: 'redis', check: () => redis.ping() },
    ],
    close: [
      () => follower.stop(),
      () => registry.close(),
      () => feature.close(),
      () => featureLookup.close(),
      () => predictionLog.close(),
      () => predictions.close(),
      () => executor.close(),
      () => redis.disconnect(),
    ],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
