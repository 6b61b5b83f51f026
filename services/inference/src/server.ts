import {
  type GetServingStatusResponseSchema,
  InferenceService,
  type PredictRequest,
  type PredictResponseSchema,
  type PredictStreamResponseSchema,
  VersionState,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { GRPCInferenceService } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import {
  BallastError,
  failedPrecondition,
  invalidArgument,
  notFound,
  type ServiceImpl,
  type ServiceRegistration,
  serve,
  toStatus,
} from '@ballast/grpc-kit';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { DeploymentFollower } from './deployments.js';
import { rowsToInputs } from './inputs.js';
import type { ModelPool } from './model-pool.js';
import { inferInputs, inferOutputs, oipDatatype } from './oip.js';
import type { OnlineFeatures } from './online-features.js';
import type { PredictionLog } from './prediction-log.js';
import type { Predictor } from './predictor.js';

export interface InferenceDeps {
  pool: ModelPool;
  predictor: Predictor;
  follower?: DeploymentFollower | undefined;
  predictionLog?: PredictionLog | undefined;
  /** Whether the server is ready (ServerReady): the first registry snapshot's loads settled. */
  ready: () => boolean;
  /** Rows per request; the batcher's max_batch_size bounds it further. */
  maxRowsPerRequest?: number;
  /** Entity lookups through the feature service; without it, Predict takes rows only. */
  onlineFeatures?: OnlineFeatures | undefined;
  version?: string;
}

type PredictResponseInit = MessageInitShape<typeof PredictResponseSchema>;

const MAX_STREAM_IN_FLIGHT = 1024;

/**
 * Until the first registry snapshot has loaded, a model that is not here yet may well be on
 * its way (a restart, a cold start): say UNAVAILABLE, which callers retry, not NOT_FOUND.
 * (Found by the reliability suite: kill -9 under load, then restart.)
 */
async function servePredict(deps: InferenceDeps, call: Parameters<Predictor['predict']>[0]) {
  try {
    return await deps.predictor.predict(call);
  } catch (err) {
    if (!deps.ready() && err instanceof BallastError && err.code === 'not_found') {
      throw new BallastError('unavailable', `${err.message}; the deployed models are still loading, retry`);
    }
    throw err;
  }
}

/** Whether every row carries exactly `segments` (or none at all when there are none). */
function sameSegments(
  rows: readonly { segments: Record<string, string> }[],
  segments: Record<string, string> | undefined,
) {
  const keys = segments ? Object.keys(segments) : [];
  for (const row of rows) {
    const own = Object.keys(row.segments);
    if (own.length !== keys.length) return false;
    for (const k of own) if (row.segments[k] !== segments?.[k]) return false;
  }
  return true;
}

/**
 * The rows for a request that names entities: their latest features from the feature
 * service's online store, read from the view the serving version was trained on (its
 * lineage), or from the view the request names.
 */
async function entityRows(deps: InferenceDeps, request: PredictRequest, deadline: Date | undefined) {
  if (!deps.onlineFeatures) {
    throw failedPrecondition(
      'entity-key lookups need the feature service (set BALLAST_FEATURE_ADDR); send rows of named features',
    );
  }
  const entry = deps.pool.find(request.model);
  const serving =
    request.version > 0
      ? entry?.versions.get(request.version)
      : entry?.aliases.get(request.alias || 'production');
  if (!entry || !serving) {
    const missing =
      request.version > 0
        ? `model ${request.model} version ${request.version} is not loaded here`
        : `model ${request.model} has no ${request.alias || 'production'} version loaded here`;
    // As in servePredict: while the first snapshot loads, the model may well be on its way.
    if (!deps.ready())
      throw new BallastError('unavailable', `${missing}; the deployed models are still loading, retry`);
    throw notFound(missing);
  }
  const own = serving.featureView;
  const named = request.entities?.featureView ?? '';
  if (!named && !own) {
    throw failedPrecondition(
      `${request.model} v${serving.version} records no feature view in its lineage: name one in entities.feature_view`,
    );
  }
  const view =
    !named || named === own?.name
      ? { name: own?.name ?? named, version: own?.version ?? '' }
      : { name: named, version: '' };
  return deps.onlineFeatures.rows(view, request.entities?.entities ?? [], deadline);
}

async function predict(
  deps: InferenceDeps,
  request: PredictRequest,
  signal: AbortSignal,
  deadline: Date | undefined,
): Promise<PredictResponseInit> {
  if (!request.model) throw invalidArgument('model', 'is required');
  if (request.version < 0) throw invalidArgument('version', 'must be >= 0');
  const entities = request.entities?.entities ?? [];
  if (entities.length > 0 && request.rows.length > 0) {
    throw invalidArgument('entities', 'send either rows or entities, not both');
  }
  const max = deps.maxRowsPerRequest ?? 4096;
  if (entities.length > max)
    throw invalidArgument('entities.entities', `at most ${max} entities per request, got ${entities.length}`);
  const rows = entities.length > 0 ? await entityRows(deps, request, deadline) : request.rows;
  if (rows.length === 0) throw invalidArgument('rows', 'at least one row is required (empty request)');
  if (rows.length > max) throw invalidArgument('rows', `at most ${max} rows per request, got ${rows.length}`);
  const segments = rows.find((r) => Object.keys(r.segments).length > 0)?.segments;
  // Rows of several segments in one request (warehouses in one call) are logged per row.
  const rowSegments = sameSegments(rows, segments) ? undefined : rows.map((r) => r.segments);
  const outcome = await servePredict(deps, {
    api: 'predict',
    model: request.model,
    alias: request.alias,
    version: request.version,
    requestId: request.requestId,
    stickyKey: rows[0]?.entityKey || undefined,
    entityKeys: rows.map((r) => r.entityKey),
    segments,
    rowSegments,
    build: (version, allowNonFinite) => rowsToInputs(rows, version, allowNonFinite),
    signal,
    deadline,
  });
  const { answer } = outcome;
  const predictions = Array.from({ length: rows.length }, (_, row) => ({
    outputs: Object.fromEntries(
      answer.outputs.map((output) => {
        const size = output.data.length / rows.length;
        return [output.name, { values: Array.from(output.data.subarray(row * size, (row + 1) * size)) }];
      }),
    ),
  }));
  return {
    model: request.model,
    version: outcome.version.version,
    alias: outcome.alias,
    backend: deps.predictor.backend,
    predictions,
    timings: {
      queueUs: BigInt(answer.queueUs),
      computeUs: BigInt(answer.computeUs),
      totalUs: BigInt(outcome.totalUs),
      batchSize: answer.batchSize,
    },
    requestId: outcome.requestId,
  };
}

export function inferenceService(deps: InferenceDeps): ServiceImpl<typeof InferenceService> {
  return {
    predict(request, ctx) {
      return predict(deps, request, ctx.signal, ctx.deadline);
    },
    async *predictStream(requests, ctx) {
      // Requests run concurrently (they batch with each other); answers go out as they finish.
      type Out = MessageInitShape<typeof PredictStreamResponseSchema>;
      const ready: Out[] = [];
      let inFlight = 0;
      let wake: (() => void) | undefined;
      let done = false;
      let readError: unknown;
      const notify = () => {
        wake?.();
        wake = undefined;
      };
      const reader = (async () => {
        try {
          for await (const message of requests) {
            const request = message.request;
            while (inFlight >= MAX_STREAM_IN_FLIGHT) await new Promise<void>((r) => setTimeout(r, 1));
            inFlight++;
            const requestId = request?.requestId ?? '';
            const run = request
              ? predict(deps, request, ctx.signal, undefined)
              : Promise.reject(invalidArgument('request', 'is required'));
            run
              .then(
                (response) =>
                  ready.push({
                    requestId: String(response.requestId ?? requestId),
                    result: { case: 'response', value: response },
                  }),
                (error: unknown) => {
                  const status = toStatus(error);
                  const e = error as Partial<BallastError>;
                  ready.push({
                    requestId,
                    result: {
                      case: 'error',
                      value: {
                        code: status.code,
                        message: status.details,
                        field: e.field ?? '',
                        rule: e.rule ?? '',
                      },
                    },
                  });
                },
              )
              .finally(() => {
                inFlight--;
                notify();
              });
          }
        } catch (error) {
          readError = error;
        } finally {
          done = true;
          notify();
        }
      })();
      while (true) {
        while (ready.length > 0) yield ready.shift() as Out;
        if (done && inFlight === 0) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (ready.length > 0 || (done && inFlight === 0)) resolve();
        });
      }
      await reader;
      if (readError) throw readError;
    },
    getServingStatus(request) {
      const models = deps.pool
        .entries()
        .filter((entry) => !request.model || entry.name === request.model)
        .map((entry) => {
          const versions = [...entry.versions.values()].map((v) => ({
            version: v.version,
            state: v.retired ? VersionState.DRAINING : VersionState.READY,
            aliases: [...v.aliases],
            artifactDigest: v.digest,
            loadMs: BigInt(Math.round(v.loadMs)),
          }));
          const loading = [...entry.loading]
            .filter((n) => !entry.versions.has(n))
            .map((version) => ({ version, state: VersionState.LOADING }));
          const failed = entry.failures.map((f) => ({
            version: f.version,
            state: VersionState.FAILED,
            artifactDigest: f.digest,
            error: `${f.time.toISOString()}: ${f.error}`,
          }));
          return {
            model: entry.name,
            versions: [...versions, ...loading, ...failed],
            canaryPercent: entry.config.canaryPercent,
            shadow: entry.config.shadow,
          };
        });
      const response: MessageInitShape<typeof GetServingStatusResponseSchema> = {
        backend: deps.predictor.backend,
        backendReason: deps.pool.backendReason,
        models,
        registryConnected: deps.follower?.connected ?? false,
        predictionLogDropped: BigInt(deps.predictionLog?.dropped ?? 0),
      };
      return response;
    },
  };
}

function parseVersion(text: string, field: string): number | undefined {
  if (text === '') return undefined;
  if (!/^[1-9]\d{0,8}$/.test(text))
    throw invalidArgument(field, `must be a version number (1, 2, ...), got "${text}"`);
  return Number(text);
}

/** The Open Inference Protocol v2 over the same pool and batchers. */
export function oipService(deps: InferenceDeps): ServiceImpl<typeof GRPCInferenceService> {
  return {
    serverLive: () => ({ live: true }),
    serverReady: () => ({ ready: deps.ready() }),
    modelReady(request) {
      const entry = deps.pool.find(request.name);
      if (!entry) return { ready: false };
      const version = /^\d+$/.test(request.version) ? Number(request.version) : undefined;
      if (request.version === '') return { ready: entry.aliases.has('production') };
      const loaded = version === undefined ? undefined : entry.versions.get(version);
      return { ready: loaded !== undefined && !loaded.retired };
    },
    serverMetadata: () => ({ name: 'ballast-inference', version: deps.version ?? '0.1.0', extensions: [] }),
    modelMetadata(request) {
      const entry = deps.pool.find(request.name);
      if (!entry) throw new BallastError('not_found', `model "${request.name}" is not served here`);
      const wanted = parseVersion(request.version, 'version');
      const version = wanted === undefined ? entry.aliases.get('production') : entry.versions.get(wanted);
      if (!version || version.retired) {
        throw new BallastError(
          'not_found',
          wanted === undefined
            ? `model "${request.name}" has no production version loaded`
            : `model "${request.name}" version ${wanted} is not loaded`,
        );
      }
      const tensor = (t: { name: string; dtype: string | null; shape: number[] | null }) => ({
        name: t.name,
        datatype: oipDatatype(t.dtype),
        shape: (t.shape ?? [-1]).map(BigInt),
      });
      return {
        name: request.name,
        versions: [...entry.versions.values()].filter((v) => !v.retired).map((v) => String(v.version)),
        platform: `tensorflowjs_${deps.predictor.backend}`,
        inputs: version.signature.inputs.map(tensor),
        outputs: version.signature.outputs.map(tensor),
      };
    },
    async modelInfer(request, ctx) {
      if (!request.modelName) throw invalidArgument('model_name', 'is required');
      const outcome = await servePredict(deps, {
        api: 'oip',
        model: request.modelName,
        version: parseVersion(request.modelVersion, 'model_version'),
        requestId: request.id,
        build: (version, allowNonFinite) => inferInputs(request, version, allowNonFinite),
        signal: ctx.signal,
        deadline: ctx.deadline,
      });
      const { outputs, rawOutputContents } = inferOutputs(request, outcome.answer.outputs);
      return {
        modelName: request.modelName,
        modelVersion: String(outcome.version.version),
        id: request.id,
        outputs,
        rawOutputContents,
      };
    },
  };
}

export function inferenceServices(deps: InferenceDeps): ServiceRegistration[] {
  return [serve(InferenceService, inferenceService(deps)), serve(GRPCInferenceService, oipService(deps))];
}
