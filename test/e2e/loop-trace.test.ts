import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Aggregation,
  CalendarPart,
  FeatureService,
  SourceFieldType,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { FieldType, IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient } from '@ballast/grpc-kit';
import {
  connectRedis,
  createQueue,
  QueueNames,
  type RedisConnection,
  type TrainingRunJob,
  trainingJobId,
} from '@ballast/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtlpReceiver, type ReceivedSpan, SpanKind } from './otlp-receiver.js';
import { eventually, type RunningProcess, startServiceProcess, waitServing } from './support.js';

// The closed loop as one story in traces: an ingest commit, the materialization it enqueues,
// a training job on the committed data (a trace of its own, linked to the commit), the
// registration and promotion inside the job's trace, inference swapping the version in (linked
// to the promotion) and the first prediction it serves (linked to the swap). Every service is a
// real process exporting OTLP/gRPC to a receiver in this test, as it would to Jaeger. Redis DB 9
// and a temporary PGlite directory keep it apart from every other test.
const REDIS_URL = process.env.BALLAST_TEST_TRACE_REDIS_URL ?? 'redis://127.0.0.1:6379/9';
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-loop-trace-'));
const running: RunningProcess[] = [];
const receiver = new OtlpReceiver();

const grpcSpan = (service: string, method: string) => `grpc.ballast.${service}.v1.${method}`;
const COMMIT = grpcSpan('ingest', 'IngestService/CommitVersion');
const CREATE_VERSION = grpcSpan('registry', 'RegistryService/CreateModelVersion');
const PROMOTE = grpcSpan('registry', 'RegistryService/Promote');
const PREDICT = grpcSpan('inference', 'InferenceService/Predict');

const DAYS = 40;
const START = Date.UTC(2024, 0, 1);

function salesColumns() {
  const rows: { id: string; day: number; w: string; s: string; units: number; price: number }[] = [];
  for (const [wi, w] of ['W1', 'W2'].entries())
    for (const [si, s] of ['S1', 'S2'].entries())
      for (let d = 0; d < DAYS; d++) {
        const weekly = [1, 0.9, 0.95, 1, 1.2, 1.5, 1.3][d % 7] ?? 1;
        const price = 5 + si + (d % 5) * 0.2;
        const units = Math.round((20 + wi * 10) * weekly - price + ((d * 13 + si * 7) % 5));
        rows.push({ id: `${w}-${s}-${d}`, day: START + d * 86_400_000, w, s, units, price });
      }
  const column = <T>(pick: (r: (typeof rows)[number]) => T) => rows.map(pick);
  return {
    rowCount: rows.length,
    columns: [
      { name: 'event_id', values: { case: 'strings' as const, value: { values: column((r) => r.id) } } },
      {
        name: 'day',
        values: { case: 'timestamps' as const, value: { seconds: column((r) => BigInt(r.day / 1000)) } },
      },
      { name: 'warehouse_id', values: { case: 'strings' as const, value: { values: column((r) => r.w) } } },
      { name: 'sku', values: { case: 'strings' as const, value: { values: column((r) => r.s) } } },
      { name: 'units', values: { case: 'doubles' as const, value: { values: column((r) => r.units) } } },
      { name: 'price', values: { case: 'doubles' as const, value: { values: column((r) => r.price) } } },
    ],
  };
}

/** `${traceId}/${spanId}`: how a traceparent, a link and a span are compared. */
const ref = (s: { traceId: string; spanId: string }) => `${s.traceId}/${s.spanId}`;

function fromTraceparent(traceparent: string): string {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(traceparent);
  if (!match) throw new Error(`not a traceparent: "${traceparent}"`);
  return `${match[1]}/${match[2]}`;
}

describe('the loop as one trace', () => {
  let redis: RedisConnection;
  let addresses: Record<'ingest' | 'feature' | 'registry' | 'inference', string>;
  let inferenceEnv: Record<string, string>;

  beforeAll(async () => {
    await receiver.start();
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    const common = {
      BALLAST_DATA_DIR: dataDir,
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      // Export within a fraction of a second, so the test waits on spans, not on batches.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const [ingest, registry] = await Promise.all([
      startServiceProcess('ingest', common),
      startServiceProcess('registry', common),
    ]);
    running.push(ingest, registry);
    const registryAddr = `127.0.0.1:${registry.grpcPort}`;
    const ingestAddr = `127.0.0.1:${ingest.grpcPort}`;
    const feature = await startServiceProcess('feature', { ...common, BALLAST_INGEST_ADDR: ingestAddr });
    running.push(feature);
    const trainer = await startServiceProcess('trainer', {
      ...common,
      BALLAST_INGEST_ADDR: ingestAddr,
      BALLAST_FEATURE_ADDR: `127.0.0.1:${feature.grpcPort}`,
      BALLAST_REGISTRY_ADDR: registryAddr,
      BALLAST_TF_BACKEND: 'wasm',
    });
    running.push(trainer);
    inferenceEnv = { ...common, BALLAST_REGISTRY_ADDR: registryAddr, BALLAST_TF_BACKEND: 'wasm' };
    const inference = await startServiceProcess('inference', inferenceEnv);
    running.push(inference);
    addresses = {
      ingest: ingestAddr,
      feature: `127.0.0.1:${feature.grpcPort}`,
      registry: registryAddr,
      inference: `127.0.0.1:${inference.grpcPort}`,
    };
    await Promise.all([
      waitServing(addresses.ingest, IngestService.typeName),
      waitServing(addresses.feature, FeatureService.typeName),
      waitServing(addresses.registry, RegistryService.typeName),
      waitServing(addresses.inference, InferenceService.typeName),
      eventually(
        async () => ((await fetch(`http://127.0.0.1:${trainer.httpPort}/readyz`)).ok ? true : undefined),
        'trainer ready',
        600,
      ),
    ]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
    receiver.stop();
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('follows a commit to the first prediction of the version trained on it', async () => {
    const ingest = createClient(IngestService, { address: addresses.ingest, deadlineMs: 60_000 });
    const feature = createClient(FeatureService, { address: addresses.feature, deadlineMs: 60_000 });
    const registry = createClient(RegistryService, { address: addresses.registry, deadlineMs: 30_000 });
    const inference = createClient(InferenceService, { address: addresses.inference, deadlineMs: 30_000 });
    const materialize = createQueue(QueueNames.featuresMaterialize, { connection: redis });
    const training = createQueue(QueueNames.trainingRun, { connection: redis });
    try {
      // --- the loop ---------------------------------------------------------------------
      await ingest.createDataset({
        name: 'sales',
        schema: {
          fields: [
            { name: 'event_id', type: FieldType.STRING, required: true },
            { name: 'day', type: FieldType.TIMESTAMP, required: true },
            { name: 'warehouse_id', type: FieldType.STRING, required: true },
            { name: 'sku', type: FieldType.STRING, required: true },
            { name: 'units', type: FieldType.FLOAT, required: true },
            { name: 'price', type: FieldType.FLOAT, required: true },
          ],
          eventIdField: 'event_id',
          eventTimeField: 'day',
          entityFields: ['warehouse_id', 'sku'],
          segmentFields: ['warehouse_id'],
        },
      });
      await feature.applyFeatureView({
        definition: {
          name: 'demand',
          source: {
            dataset: 'sales',
            eventTimeField: 'day',
            fields: [
              { name: 'event_id', type: SourceFieldType.STRING },
              { name: 'day', type: SourceFieldType.TIMESTAMP },
              { name: 'warehouse_id', type: SourceFieldType.STRING },
              { name: 'sku', type: SourceFieldType.STRING },
              { name: 'units', type: SourceFieldType.FLOAT },
              { name: 'price', type: SourceFieldType.FLOAT },
            ],
          },
          entityFields: ['warehouse_id', 'sku'],
          segmentFields: ['warehouse_id'],
          label: { name: 'units_next_day', field: 'units', leadDays: 1 },
          features: [
            { name: 'units', transform: { case: 'raw', value: { field: 'units' } } },
            {
              name: 'units_mean_7',
              transform: {
                case: 'rolling',
                value: { field: 'units', aggregation: Aggregation.MEAN, windowDays: 7 },
              },
            },
            { name: 'dow', transform: { case: 'calendar', value: { part: CalendarPart.DAY_OF_WEEK } } },
            { name: 'price', transform: { case: 'raw', value: { field: 'price' } } },
          ],
        },
      });
      const ingested = await ingest.ingestBatch({
        batch: { dataset: 'sales', source: 'test', ...salesColumns() },
      });
      expect(ingested.result?.accepted).toBe(4 * DAYS);
      const { version: committed } = await ingest.commitVersion({ dataset: 'sales' });
      const datasetVersion = committed?.id ?? '';
      // The version remembers the call that committed it; GetVersion answers the same.
      const commitRef = fromTraceparent(committed?.commitTraceparent ?? '');
      expect(
        (await ingest.getVersion({ dataset: 'sales', id: datasetVersion })).version?.commitTraceparent,
      ).toBe(committed?.commitTraceparent);

      // The commit enqueued the materialization; feature's worker runs it.
      await eventually(
        async () => {
          const job = await materialize.getJob(`sales.${datasetVersion}`);
          const state = await job?.getState();
          if (state === 'failed') throw new Error(`materialization failed: ${job?.failedReason}`);
          return state === 'completed' ? true : undefined;
        },
        'the materialization the commit enqueued',
        1_200,
      );

      await registry.createModel({ name: 'demand', task: Task.REGRESSION, ownerTeam: 'forecasting' });
      const job: TrainingRunJob = {
        model: 'demand',
        reason: 'loop trace test',
        featureView: 'demand',
        spec: { hiddenUnits: [8], epochs: 3, batchSize: 32, learningRate: 0.01, seed: 5 },
        promote: true,
      };
      const added = await training.add('train', job, { jobId: trainingJobId(job) });
      const outcome = await eventually(
        async () => {
          const state = await added.getState();
          const current = await training.getJob(added.id ?? '');
          if (state === 'failed') throw new Error(`training failed: ${current?.failedReason}`);
          return state === 'completed'
            ? (current?.returnvalue as { version: number; promotion: string })
            : undefined;
        },
        'the training job',
        3_000,
      );
      expect(outcome).toMatchObject({ version: 1, promotion: 'promoted' });

      // Inference follows the promotion; the first prediction it serves from v1 follows that.
      await eventually(
        async () => {
          const { models } = await inference.getServingStatus({ model: 'demand' });
          const serving = models[0]?.versions.find((v) => v.version === 1);
          return serving?.aliases.includes('production') ? true : undefined;
        },
        'inference to serve v1 as production',
        1_200,
      );
      const { version: v1 } = await registry.getModelVersion({ model: 'demand', version: 1 });
      const input = v1?.signature?.inputs[0];
      const width = Number(input?.shape.at(-1) ?? 0);
      expect(width).toBeGreaterThan(0);
      const predicted = await inference.predict({
        model: 'demand',
        rows: [
          { inputs: { [input?.name ?? '']: { values: Array.from({ length: width }, (_, i) => i + 1) } } },
        ],
      });
      expect(predicted).toMatchObject({ version: 1, alias: 'production' });

      // --- the spans ----------------------------------------------------------------------
      const span = (what: string, predicate: (s: ReceivedSpan) => boolean) =>
        eventually(async () => receiver.find(predicate), what, 600);
      const childOf = (parent: ReceivedSpan) => (s: ReceivedSpan) =>
        s.traceId === parent.traceId && s.parentSpanId === parent.spanId;

      // 1. The commit and the materialization it enqueued: one trace, parent by parent.
      const commit = await span(
        'the CommitVersion server span',
        (s) => s.name === COMMIT && s.kind === SpanKind.SERVER,
      );
      expect(commit.service).toBe('ballast-ingest');
      expect(ref(commit)).toBe(commitRef);
      const enqueued = await span(
        'the features.materialize producer span',
        (s) => s.name === 'add features.materialize.materialize' && s.traceId === commit.traceId,
      );
      expect(enqueued.service).toBe('ballast-ingest');
      expect(enqueued.kind).toBe(SpanKind.PRODUCER);
      expect(ancestors(enqueued)).toContain(commit);
      const processed = await span('the materialize job span', (s) =>
        s.name === 'process features.materialize' ? childOf(enqueued)(s) : false,
      );
      expect(processed).toMatchObject({ service: 'ballast-feature', kind: SpanKind.CONSUMER });
      const materialized = await span('the feature.materialize span', (s) =>
        s.name === 'feature.materialize' ? childOf(processed)(s) : false,
      );
      expect(materialized.service).toBe('ballast-feature');
      expect(materialized.attributes).toMatchObject({
        'ballast.dataset.version': datasetVersion,
        'ballast.feature.view': 'demand',
      });

      // 2. The training job: its own trace, every stage a child of the job's span, and the
      // fetch linked to the commit of the data it trained on (jobs fan in on data).
      const jobSpan = await span(
        'the training.run job span',
        (s) => s.name === 'process training.run' && s.service === 'ballast-trainer',
      );
      expect(jobSpan.kind).toBe(SpanKind.CONSUMER);
      expect(jobSpan.traceId).not.toBe(commit.traceId);
      const stages: Record<string, ReceivedSpan> = {};
      for (const stage of ['fetch', 'fit', 'evaluate', 'upload', 'register'])
        stages[stage] = await span(`training.${stage}`, (s) =>
          s.name === `training.${stage}` ? childOf(jobSpan)(s) : false,
        );
      const epochs = await eventually(
        async () => {
          const found = receiver.filter((s) => s.name === 'training.epoch' && s.traceId === jobSpan.traceId);
          return found.length === 3 ? found : undefined;
        },
        'three training.epoch spans',
        600,
      );
      for (const epoch of epochs) expect(epoch.parentSpanId).toBe(stages.fit?.spanId);
      expect(stages.fetch?.links.map(ref)).toContain(commitRef);
      expect(stages.fetch?.links.find((l) => ref(l) === commitRef)?.attributes).toMatchObject({
        'ballast.link': 'dataset_commit',
        'ballast.dataset.version': datasetVersion,
      });

      // Registry's server spans sit in the job's trace, under the trainer's client spans.
      const created = await span(
        'the CreateModelVersion server span',
        (s) => s.name === CREATE_VERSION && s.kind === SpanKind.SERVER && s.traceId === jobSpan.traceId,
      );
      expect(created.service).toBe('ballast-registry');
      expect(receiver.parentOf(created)).toMatchObject({ name: CREATE_VERSION, kind: SpanKind.CLIENT });
      expect(ancestors(created)).toContain(stages.register);
      const promote = await span(
        'the Promote server span',
        (s) => s.name === PROMOTE && s.kind === SpanKind.SERVER && s.traceId === jobSpan.traceId,
      );
      expect(promote.service).toBe('ballast-registry');
      expect(receiver.parentOf(promote)).toMatchObject({
        name: PROMOTE,
        kind: SpanKind.CLIENT,
        service: 'ballast-trainer',
      });
      expect(ancestors(promote)).toContain(jobSpan);

      // 3. Inference's swap to v1 as production: a trace of its own, linked to the Promote call.
      const swap = await span(
        'the inference.swap span for production v1',
        (s) =>
          s.name === 'inference.swap' &&
          s.attributes['inference.alias'] === 'production' &&
          s.attributes['inference.version'] === 1,
      );
      expect(swap.service).toBe('ballast-inference');
      expect(swap.parentSpanId).toBe('');
      expect(swap.links.map(ref)).toContain(ref(promote));

      // 4. The first prediction v1 served links to that swap: a unary call's request is traced
      // on the call's own server span.
      const first = await span(
        'the Predict server span of the first prediction',
        (s) => s.name === PREDICT && s.kind === SpanKind.SERVER,
      );
      expect(first.service).toBe('ballast-inference');
      expect(first.attributes).toMatchObject({ 'inference.version': 1, 'inference.alias': 'production' });
      expect(first.links.map(ref)).toContain(ref(swap));
      expect(first.events.map((e) => e.name)).toContain('first request since the swap');

      // 5. A server that starts later loads production from the watch's snapshot: its swap
      // links to the same promotion.
      const restarted = await startServiceProcess('inference', inferenceEnv);
      running.push(restarted);
      await waitServing(`127.0.0.1:${restarted.grpcPort}`, InferenceService.typeName);
      const fromSnapshot = await span(
        "the restarted server's inference.swap span",
        (s) =>
          s.name === 'inference.swap' &&
          s !== swap &&
          s.attributes['inference.alias'] === 'production' &&
          s.attributes['inference.deployment_sequence'] === undefined,
      );
      expect(fromSnapshot.links.map(ref)).toEqual([ref(promote)]);
    } finally {
      await materialize.close();
      await training.close();
      ingest.close();
      feature.close();
      registry.close();
      inference.close();
    }
  }, 600_000);
});

/** The span's received ancestors, nearest first. */
function ancestors(span: ReceivedSpan): ReceivedSpan[] {
  const chain: ReceivedSpan[] = [];
  for (let at = receiver.parentOf(span); at; at = receiver.parentOf(at)) chain.push(at);
  return chain;
}
