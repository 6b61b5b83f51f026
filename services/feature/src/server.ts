import {
  FeatureService,
  GetOnlineFeaturesResponseSchema,
  MaterializationState,
  Split,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  encoded,
  invalidArgument,
  notFound,
  type ServiceImpl,
  type ServiceRegistration,
  serve,
} from '@ballast/grpc-kit';
import { timestampFromDate, timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { type CompiledView, compileView, rangeMs } from './definition.js';
import type { Materializer } from './materialize.js';
import type { OnlineStore } from './online.js';
import { decodeOnlineRequest, encodeOnlineResponse, requestedEntityKey } from './online-wire.js';
import type { MaterializationRun, MaterializationRuns, RunState } from './runs.js';
import type { FeatureStore, Materialization, StoredRow } from './store.js';
import type { VersionStatistics } from './version-statistics.js';
import type { Views } from './views.js';

export interface FeatureDeps {
  store: FeatureStore;
  views: Views;
  online: OnlineStore;
  materializer: Materializer;
  runs: MaterializationRuns;
  statistics: VersionStatistics;
}

export const MAX_ONLINE_ENTITIES = 10_000;
const DEFAULT_BATCH = 4096;
const MAX_BATCH = 65_536;
const DEFAULT_RUNS_PAGE = 50;
const MAX_RUNS_PAGE = 1_000;

const STATES: Record<RunState, MaterializationState> = {
  running: MaterializationState.RUNNING,
  succeeded: MaterializationState.SUCCEEDED,
  failed: MaterializationState.FAILED,
};
const STATE_NAMES = new Map(Object.entries(STATES).map(([name, state]) => [state, name as RunState]));

function runMessage(run: MaterializationRun) {
  return {
    view: run.view,
    viewVersion: run.viewVersion,
    datasetVersion: run.datasetVersion,
    state: STATES[run.state],
    reason: run.reason,
    attempts: run.attempts,
    trigger: run.trigger,
    records: BigInt(run.records),
    rows: BigInt(run.rows),
    entities: BigInt(run.entities),
    skippedRecords: BigInt(run.skipped),
    startTime: timestampFromDate(run.startedAt),
    ...(run.finishedAt ? { endTime: timestampFromDate(run.finishedAt) } : {}),
  };
}

function viewMessage(view: CompiledView, createdAt: Date) {
  return {
    definition: view.definition,
    version: view.version,
    featureNames: [...view.featureNames],
    createTime: timestampFromDate(createdAt),
  };
}

/** The feature service's RPC handlers, kept thin over the domain modules. */
export function featureService(deps: FeatureDeps): ServiceImpl<typeof FeatureService> {
  const { store, views, online, materializer, runs, statistics } = deps;

  const materialized = async (view: CompiledView, datasetVersion: string): Promise<Materialization> => {
    if (!datasetVersion) throw invalidArgument('dataset_version', 'is required');
    const found = await store.materialization(view.version, datasetVersion);
    if (!found) {
      throw notFound(
        `feature view ${view.name}@${view.version} is not materialized for dataset version ${datasetVersion}`,
      );
    }
    return found;
  };

  return {
    async applyFeatureView(req) {
      const view = compileView(req.definition);
      const { created, createdAt } = await store.applyView(view);
      if (created) views.noteLatest(view.name, view.version);
      return { view: viewMessage(view, createdAt), created };
    },

    async getFeatureView(req) {
      const { view, createdAt } = await views.resolveEntry(req.name, req.version, 'name');
      return { view: viewMessage(view, createdAt) };
    },

    async materialize(req, ctx) {
      const view = await views.resolve(req.view, req.viewVersion);
      if (!req.datasetVersion) throw invalidArgument('dataset_version', 'is required');
      if (req.background) {
        const run = await materializer.background(view, req.datasetVersion);
        return {
          view: view.name,
          viewVersion: view.version,
          datasetVersion: req.datasetVersion,
          run: runMessage(run),
        };
      }
      const result = await materializer.run(view, req.datasetVersion, { signal: ctx.signal });
      return {
        view: view.name,
        viewVersion: view.version,
        datasetVersion: req.datasetVersion,
        records: BigInt(result.records),
        rows: BigInt(result.rows),
        entities: BigInt(result.entities),
        skippedRecords: BigInt(result.skipped),
        onlineWritten: BigInt(result.onlineWritten),
        run: runMessage(result.run),
      };
    },

    async listMaterializations(req) {
      const limit = req.pageSize || DEFAULT_RUNS_PAGE;
      if (limit > MAX_RUNS_PAGE) throw invalidArgument('page_size', `must be at most ${MAX_RUNS_PAGE}`);
      const state = req.state ? STATE_NAMES.get(req.state) : undefined;
      if (req.state && !state) throw invalidArgument('state', 'must be a MaterializationState value');
      const found = await runs.list({
        view: req.view,
        viewVersion: req.viewVersion,
        datasetVersion: req.datasetVersion,
        state,
        limit,
      });
      return { materializations: found.map(runMessage) };
    },

    async getOnlineFeatures(req) {
      const view = await views.resolve(req.view, req.viewVersion);
      const n = req.entities.length;
      if (n > MAX_ONLINE_ENTITIES)
        throw invalidArgument('entities', `at most ${MAX_ONLINE_ENTITIES} entities per call`);
      const arity = view.entityFields.length;
      const keys = req.entities.map((entity, i) => {
        if (entity.values.length !== arity) {
          throw invalidArgument(
            `entities[${i}].values`,
            `must hold ${arity} values (${view.entityFields.join(', ')})`,
          );
        }
        return requestedEntityKey(entity);
      });
      const vectors = await online.readPacked(view.version, keys);
      return encoded(
        GetOnlineFeaturesResponseSchema,
        encodeOnlineResponse({
          viewVersion: view.version,
          featureNames: view.featureNames,
          vectors,
          maxAgeMs: view.maxAgeMs,
          now: Date.now(),
          packed: req.packed,
        }),
      );
    },

    async *getTrainingSet(req) {
      if (!req.viewVersion)
        throw invalidArgument('view_version', 'is required: training sets are pinned to a version');
      const view = await views.resolve(req.view, req.viewVersion);
      const done = await materialized(view, req.datasetVersion);
      const batchSize = req.batchSize || DEFAULT_BATCH;
      if (batchSize > MAX_BATCH) throw invalidArgument('batch_size', `must be at most ${MAX_BATCH}`);
      const fraction = req.validationFraction || 0.2;
      if (!(fraction > 0 && fraction < 1))
        throw invalidArgument('validation_fraction', 'must be between 0 and 1');
      const range = rangeMs(req.timeRange);
      if (range.start >= range.end) throw invalidArgument('time_range', 'start_time must be before end_time');
      const first = Math.max(range.start, done.minEventTime ?? 0);
      const last = Math.min(range.end, (done.maxEventTime ?? 0) + 1);
      const splitAt = req.validationStartTime
        ? timestampMs(req.validationStartTime)
        : Math.floor(first + (1 - fraction) * Math.max(0, last - first));
      const split = req.split || Split.ALL;
      const query = {
        viewVersion: view.version,
        datasetVersion: req.datasetVersion,
        start: split === Split.VALIDATION ? Math.max(range.start, splitAt) : range.start,
        end: split === Split.TRAIN ? Math.min(range.end, splitAt) : range.end,
        labelledOnly: true,
      };
      const rowCount = query.start < query.end ? await store.countRows(query) : 0;
      yield {
        part: {
          case: 'header',
          value: {
            view: view.name,
            viewVersion: view.version,
            datasetVersion: req.datasetVersion,
            featureNames: [...view.featureNames],
            labelName: view.label.name,
            entityFields: [...view.entityFields],
            segmentFields: [...view.segmentFields],
            validationStartTime: timestampFromMs(splitAt),
            rowCount: BigInt(rowCount),
          },
        },
      };
      if (rowCount === 0) return;
      for await (const rows of store.readRows(query, batchSize)) {
        yield { part: { case: 'batch', value: trainingBatch(view, rows, splitAt) } };
      }
    },

    async getFeatureStatistics(req) {
      if (!req.viewVersion) throw invalidArgument('view_version', 'is required');
      const view = await views.resolve(req.view, req.viewVersion);
      const done = await materialized(view, req.datasetVersion);
      const bins = req.bins || 10;
      if (bins > 100) throw invalidArgument('bins', 'must be at most 100');
      return statistics.answer(view, req.datasetVersion, done, { bins, ...rangeMs(req.timeRange) });
    },
  };
}

function trainingBatch(view: CompiledView, rows: readonly StoredRow[], splitAt: number) {
  const width = view.featureNames.length;
  const features = new Array<number>(rows.length * width);
  const entities = view.entityFields.map((name) => ({ name, values: new Array<string>(rows.length) }));
  const segments = view.segmentFields.map((name) => ({ name, values: new Array<string>(rows.length) }));
  rows.forEach((row, i) => {
    for (let j = 0; j < width; j++) features[i * width + j] = row.features[j] as number;
    const keys = JSON.parse(row.entityKey) as string[];
    entities.forEach((column, k) => {
      column.values[i] = keys[k] as string;
    });
    const segs = JSON.parse(row.segment) as (string | null)[];
    segments.forEach((column, k) => {
      column.values[i] = segs[k] ?? '';
    });
  });
  return {
    rowCount: rows.length,
    features,
    labels: rows.map((r) => r.label),
    eventTimeUnixMillis: rows.map((r) => BigInt(r.eventTime)),
    entities,
    segments,
    validation: rows.map((r) => r.eventTime >= splitAt),
  };
}

/** The service as a server registers it: its handlers, and GetOnlineFeatures' direct request decoder. */
export function serveFeature(deps: FeatureDeps): ServiceRegistration {
  return serve(FeatureService, featureService(deps), {
    requestDecoders: { getOnlineFeatures: decodeOnlineRequest },
  });
}
