import {
  type GetServingStatusResponseSchema,
  InferenceService,
  type PredictRequest,
  PredictResponseSchema,
  type PredictStreamResponseSchema,
  VersionState,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import {
  GRPCInferenceService,
  type ModelInferRequest,
  ModelInferResponseSchema,
  type ModelStreamInferResponseSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import {
  BallastError,
  encoded,
  failedPrecondition,
  invalidArgument,
  notFound,
  type ServiceImpl,
  type ServiceRegistration,
  serve,
  toStatus,
} from '@ballast/grpc-kit';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { status as Status } from '@grpc/grpc-js';
import type { Span } from '@opentelemetry/api';
import { answerConcurrently } from './answer-stream.js';
import type { Cancellation } from './batcher.js';
import type { DeploymentFollower } from './deployments.js';
import { rowEventTimes } from './event-times.js';
import { decodeModelInferRequest, encodeModelInferResponse, type InferAnswer } from './infer-wire.js';
import { rowCapExceeded, rowsToInputs } from './inputs.js';
import type { ModelPool } from './model-pool.js';
import { answeredOutputs, inferInputs, inferResponseInit } from './oip.js';
import { modelConfig, modelMetadata, modelStatistics, parseVersion, repositoryIndex } from './oip-models.js';
import type { OnlineFeatures } from './online-features.js';
import {
  decodePredictRequest,
  encodePredictResponse,
  type PredictAnswer,
  predictResponseInit,
} from './predict-wire.js';
import type { PredictionLog } from './prediction-log.js';
import type { Predictor } from './predictor.js';

export interface InferenceDeps {
  pool: ModelPool;
  predictor: Predictor;
  follower?: DeploymentFollower | undefined;
  predictionLog?: PredictionLog | undefined;
  /** Whether the server is ready (ServerReady): the first registry snapshot's loads settled. */
  ready: () => boolean;
  /** Entity lookups through the feature service; without it, Predict takes rows only. */
  onlineFeatures?: OnlineFeatures | undefined;
  version?: string;
}

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

/**
 * One Predict request. `span`: a unary call's server span (`ctx.span`), on which the request
 * is traced; a stream's requests share one call, so they pass none and get a span each.
 */
async function predict(
  deps: InferenceDeps,
  request: PredictRequest,
  signal: Cancellation,
  deadline: Date | undefined,
  span?: Span,
): Promise<PredictAnswer> {
  if (!request.model) throw invalidArgument('model', 'is required');
  if (request.version < 0) throw invalidArgument('version', 'must be >= 0');
  const entities = request.entities?.entities ?? [];
  if (entities.length > 0 && request.rows.length > 0) {
    throw invalidArgument('entities', 'send either rows or entities, not both');
  }
  // Past the row cap nothing is looked up: not the entities' vectors, not even the model.
  const cap = deps.pool.configOf(request.model).maxRowsPerRequest;
  if (entities.length > cap) throw rowCapExceeded('entities.entities', entities.length, cap);
  if (request.rows.length > cap) throw rowCapExceeded('rows', request.rows.length, cap);
  const rows = entities.length > 0 ? await entityRows(deps, request, deadline) : request.rows;
  if (rows.length === 0) throw invalidArgument('rows', 'at least one row is required (empty request)');
  const segments = rows.find((r) => Object.keys(r.segments).length > 0)?.segments;
  // Rows of several segments in one request (warehouses in one call) are logged per row.
  const rowSegments = sameSegments(rows, segments) ? undefined : rows.map((r) => r.segments);
  const rowTimes = rowEventTimes(rows, Date.now());
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
    rowTimes,
    build: (version, limits) => rowsToInputs(rows, version, limits),
    signal,
    deadline,
    span,
  });
  const { answer } = outcome;
  return {
    model: request.model,
    version: outcome.version.version,
    alias: outcome.alias,
    backend: outcome.version.engine,
    rows: rows.length,
    outputs: answer.outputs,
    timings: {
      queueUs: answer.queueUs,
      computeUs: answer.computeUs,
      totalUs: outcome.totalUs,
      batchSize: answer.batchSize,
    },
    requestId: outcome.requestId,
  };
}

export function inferenceService(deps: InferenceDeps): ServiceImpl<typeof InferenceService> {
  return {
    async predict(request, ctx) {
      const answer = await predict(deps, request, ctx, ctx.deadline, ctx.span);
      return encoded(PredictResponseSchema, encodePredictResponse(answer));
    },
    predictStream(requests, ctx) {
      // Requests run concurrently (they batch with each other); answers go out as they finish.
      type Out = MessageInitShape<typeof PredictStreamResponseSchema>;
      return answerConcurrently(
        requests,
        async (message): Promise<Out> => {
          if (!message.request) throw invalidArgument('request', 'is required');
          const answer = await predict(deps, message.request, ctx, undefined);
          return {
            requestId: answer.requestId || message.request.requestId,
            result: { case: 'response', value: predictResponseInit(answer) },
          };
        },
        (message, error): Out => {
          const status = toStatus(error);
          const e = error as Partial<BallastError>;
          return {
            requestId: message.request?.requestId ?? '',
            result: {
              case: 'error',
              value: { code: status.code, message: status.details, field: e.field ?? '', rule: e.rule ?? '' },
            },
          };
        },
      );
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

/** One ModelInfer, alone (traced on its call's `span`) or on a ModelStreamInfer stream (a span of its own). */
async function modelInfer(
  deps: InferenceDeps,
  request: ModelInferRequest,
  signal: Cancellation,
  deadline: Date | undefined,
  span?: Span,
): Promise<InferAnswer> {
  if (!request.modelName) throw invalidArgument('model_name', 'is required');
  const outcome = await servePredict(deps, {
    api: 'oip',
    model: request.modelName,
    version: parseVersion(request.modelVersion, 'model_version'),
    requestId: request.id,
    build: (version, limits) => inferInputs(request, version, limits),
    signal,
    deadline,
    span,
  });
  return {
    modelName: request.modelName,
    modelVersion: String(outcome.version.version),
    id: request.id,
    outputs: answeredOutputs(request, outcome.answer.outputs),
    raw: request.rawInputContents.length > 0,
  };
}

/** The Open Inference Protocol v2, and Triton's extensions of it, over the same pool and batchers. */
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
    serverMetadata: () => ({
      name: 'ballast-inference',
      version: deps.version ?? '0.1.0',
      // Triton's names for the extension RPCs served (RepositoryIndex alone of model_repository).
      extensions: ['model_configuration', 'statistics'],
    }),
    modelMetadata: (request) => modelMetadata(deps.pool, request),
    modelInfer: async (request, ctx) =>
      encoded(
        ModelInferResponseSchema,
        encodeModelInferResponse(await modelInfer(deps, request, ctx, ctx.deadline, ctx.span)),
      ),
    // Triton's extensions.
    modelStreamInfer(requests, ctx) {
      type Out = MessageInitShape<typeof ModelStreamInferResponseSchema>;
      return answerConcurrently(
        requests,
        async (request): Promise<Out> => ({
          inferResponse: inferResponseInit(await modelInfer(deps, request, ctx, undefined)),
        }),
        (request, error): Out => {
          const status = toStatus(error);
          return {
            errorMessage: `${Status[status.code]}: ${status.details}`,
            inferResponse: {
              modelName: request.modelName,
              modelVersion: request.modelVersion,
              id: request.id,
            },
          };
        },
      );
    },
    modelConfig: (request) => modelConfig(deps.pool, request),
    modelStatistics: (request) => modelStatistics(deps.pool, request),
    repositoryIndex: (request) => repositoryIndex(deps.pool, request),
  };
}

/** Both APIs as a server registers them, with the direct request decoders of their hot methods. */
export function inferenceServices(deps: InferenceDeps): ServiceRegistration[] {
  return [
    serve(InferenceService, inferenceService(deps), {
      requestDecoders: { predict: decodePredictRequest },
    }),
    serve(GRPCInferenceService, oipService(deps), {
      requestDecoders: { modelInfer: decodeModelInferRequest, modelStreamInfer: decodeModelInferRequest },
    }),
  ];
}
