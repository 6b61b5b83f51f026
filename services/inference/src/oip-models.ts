import type {
  ModelConfigResponseSchema,
  ModelMetadataResponseSchema,
  ModelStatisticsResponseSchema,
  RepositoryIndexResponse_ModelIndexSchema,
  RepositoryIndexResponseSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { DataType, ModelQueuePolicy_TimeoutAction } from '@ballast/contracts/inference/model_config_pb.js';
import { BallastError, invalidArgument } from '@ballast/grpc-kit';
import type { TensorSpec } from '@ballast/ml';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { LoadedVersion, ModelEntry, ModelPool } from './model-pool.js';
import { oipDatatype } from './oip.js';
import type { StatisticDuration } from './statistics.js';

/**
 * What the Open Inference Protocol's and Triton's model RPCs say about the models served
 * here: metadata, configuration, statistics and the repository index.
 */

/** An OIP version string: empty (the server chooses) or a version number. */
export function parseVersion(text: string, field: string): number | undefined {
  if (text === '') return undefined;
  if (!/^[1-9]\d{0,8}$/.test(text))
    throw invalidArgument(field, `must be a version number (1, 2, ...), got "${text}"`);
  return Number(text);
}

/** The version a model RPC describes: the one named, or `production` when none is. */
function servedVersion(pool: ModelPool, name: string, versionText: string): [ModelEntry, LoadedVersion] {
  const entry = pool.find(name);
  if (!entry) throw new BallastError('not_found', `model "${name}" is not served here`);
  const wanted = parseVersion(versionText, 'version');
  const version = wanted === undefined ? entry.aliases.get('production') : entry.versions.get(wanted);
  if (!version || version.retired) {
    throw new BallastError(
      'not_found',
      wanted === undefined
        ? `model "${name}" has no production version loaded`
        : `model "${name}" version ${wanted} is not loaded`,
    );
  }
  return [entry, version];
}

const platform = (backend: string) => `tensorflowjs_${backend}`;

export function modelMetadata(
  pool: ModelPool,
  request: { name: string; version: string },
): MessageInitShape<typeof ModelMetadataResponseSchema> {
  const [entry, version] = servedVersion(pool, request.name, request.version);
  const tensor = (t: TensorSpec) => ({
    name: t.name,
    datatype: oipDatatype(t.dtype),
    shape: (t.shape ?? [-1]).map(BigInt),
  });
  return {
    name: request.name,
    versions: [...entry.versions.values()].filter((v) => !v.retired).map((v) => String(v.version)),
    platform: platform(pool.backend),
    inputs: version.signature.inputs.map(tensor),
    outputs: version.signature.outputs.map(tensor),
  };
}

const DATA_TYPES: Record<string, DataType> = {
  float32: DataType.TYPE_FP32,
  int32: DataType.TYPE_INT32,
  bool: DataType.TYPE_BOOL,
  string: DataType.TYPE_STRING,
};

/** A tensor as Triton's config lists it: one batch element's dims (the batch dimension left out). */
function configTensor(t: TensorSpec) {
  return {
    name: t.name,
    dataType: DATA_TYPES[t.dtype ?? 'float32'] ?? DataType.TYPE_INVALID,
    dims: (t.shape === null ? [-1] : t.shape.slice(1)).map(BigInt),
  };
}

/**
 * Triton's ModelConfig of a loaded version, from what actually serves it: its signature, its
 * batcher's settings (fixed when the version loaded) and the model's current row cap.
 */
export function modelConfig(
  pool: ModelPool,
  request: { name: string; version: string },
): MessageInitShape<typeof ModelConfigResponseSchema> {
  const [entry, version] = servedVersion(pool, request.name, request.version);
  const batcher = version.batcher.options;
  return {
    config: {
      name: entry.name,
      platform: platform(pool.backend),
      backend: 'tensorflowjs',
      maxBatchSize: batcher.max_batch_size,
      input: version.signature.inputs.map(configTensor),
      output: version.signature.outputs.map(configTensor),
      schedulingChoice: {
        case: 'dynamicBatching',
        value: {
          preferredBatchSize: batcher.preferred_batch_size,
          maxQueueDelayMicroseconds: BigInt(batcher.max_queue_delay_microseconds),
          defaultQueuePolicy: {
            timeoutAction: ModelQueuePolicy_TimeoutAction.REJECT,
            defaultTimeoutMicroseconds: BigInt(batcher.default_timeout_microseconds),
            maxQueueSize: batcher.max_queue_size,
          },
        },
      },
      parameters: {
        max_rows_per_request: { stringValue: String(entry.config.maxRowsPerRequest) },
        // `js`: a dense chain run inline on the event loop; else the worker's TensorFlow.js backend.
        engine: { stringValue: version.engine },
      },
    },
  };
}

const duration = (d: StatisticDuration) => ({ count: BigInt(d.count), ns: BigInt(Math.round(d.ns)) });

/** Cumulative statistics per loaded version: of one model (or all), one version (or all). */
export function modelStatistics(
  pool: ModelPool,
  request: { name: string; version: string },
): MessageInitShape<typeof ModelStatisticsResponseSchema> {
  const wanted = parseVersion(request.version, 'version');
  const entries = request.name ? [pool.find(request.name)] : pool.entries();
  if (entries[0] === undefined && request.name)
    throw new BallastError('not_found', `model "${request.name}" is not served here`);
  const versions = entries
    .flatMap((entry) => (entry ? [...entry.versions.values()] : []))
    .filter((v) => wanted === undefined || v.version === wanted)
    .sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version);
  if (wanted !== undefined && versions.length === 0)
    throw new BallastError('not_found', `model "${request.name}" version ${wanted} is not loaded`);
  return {
    modelStats: versions.map((v) => {
      const stats = v.batcher.stats;
      return {
        name: v.model,
        version: String(v.version),
        lastInference: BigInt(stats.lastInference),
        inferenceCount: BigInt(stats.inferenceCount),
        executionCount: BigInt(stats.executionCount),
        inferenceStats: {
          success: duration(stats.success),
          fail: duration(stats.fail),
          queue: duration(stats.queue),
          computeInput: duration(stats.computeInput),
          computeInfer: duration(stats.computeInfer),
          computeOutput: duration(stats.computeOutput),
        },
      };
    }),
  };
}

type ModelIndex = MessageInitShape<typeof RepositoryIndexResponse_ModelIndexSchema>;

/**
 * Every version this server knows of, with Triton's states: READY (serving), LOADING
 * (downloading, loading, warming up), UNLOADING (replaced; finishing what it admitted) and
 * UNAVAILABLE (refused at load, with the reason).
 */
export function repositoryIndex(
  pool: ModelPool,
  request: { ready: boolean },
): MessageInitShape<typeof RepositoryIndexResponseSchema> {
  const models: ModelIndex[] = [];
  const entries = pool.entries().sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const rows: { version: number; state: string; reason: string }[] = [];
    for (const v of entry.versions.values()) {
      rows.push(
        v.retired
          ? { version: v.version, state: 'UNLOADING', reason: 'replaced; finishing the requests it admitted' }
          : { version: v.version, state: 'READY', reason: '' },
      );
    }
    for (const version of entry.loading) {
      if (!entry.versions.has(version))
        rows.push({ version, state: 'LOADING', reason: 'downloading, loading and warming up' });
    }
    // Failures are kept newest first: each version's latest reason.
    for (const failure of entry.failures) {
      if (rows.some((r) => r.version === failure.version)) continue;
      rows.push({
        version: failure.version,
        state: 'UNAVAILABLE',
        reason: `refused at load: ${failure.error}`,
      });
    }
    rows.sort((a, b) => a.version - b.version);
    for (const row of rows) {
      if (request.ready && row.state !== 'READY') continue;
      models.push({ name: entry.name, version: String(row.version), state: row.state, reason: row.reason });
    }
  }
  return { models };
}
