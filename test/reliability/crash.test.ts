// Crashes under load: kill -9 a service mid-stream or mid-load, restart it, and count.
// Ingest must lose no acknowledged record and duplicate none; inference callers must see
// only retryable statuses and recover by themselves once it is back.
import { setTimeout as sleep } from 'node:timers/promises';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames, type TrainingRunJob, trainingJobId } from '@ballast/queue';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { suiteRecorder } from './report.js';
import {
  createTestDatabase,
  percentile,
  type ServiceProcess,
  ServingStatus,
  startRedis,
  startService,
  type TestRedis,
  tearDown,
  tempDir,
  waitHealth,
} from './support.js';
import {
  dailySales,
  dailySchema,
  demandView,
  eventId,
  predictRequest,
  registerDemandModel,
  salesBatch,
  salesSchema,
} from './workload.js';

const record = suiteRecorder('crash', 'Crashes under load: kill -9 and restart');

let redis: TestRedis;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let common: Record<string, string>;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
  db = await createTestDatabase('crash');
  common = { BALLAST_REDIS_URL: redis.url, BALLAST_DATABASE_URL: db.url, BALLAST_DATA_DIR: tempDir('crash') };
}, 60_000);

afterAll(() => tearDown('crash', procs, redis, db));

describe('ingest', () => {
  it('keeps every acknowledged record exactly once after kill -9 mid-stream and a full retry', async () => {
    const ingest = await startService('ingest', common);
    procs.push(ingest);
    await waitHealth(ingest, IngestService.typeName);
    const client = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000, retry: false });
    await client.createDataset({ name: 'sales', schema: salesSchema() });
    const BATCH = 500;
    const BATCHES = 80;
    const KILL_AFTER = 5;
    const batches = Array.from({ length: BATCHES }, (_, i) => salesBatch('sales', i * BATCH, BATCH));
    const acked: number[] = [];
    let sent = 0;
    let killedAt = 0;
    const stream = (async () => {
      for await (const response of client.ingest(
        (async function* () {
          for (const batch of batches) {
            sent++;
            yield { batch };
          }
        })(),
      )) {
        acked.push(Number(response.result?.batchIndex));
        if (acked.length === KILL_AFTER) {
          killedAt = Date.now();
          ingest.child.kill('SIGKILL');
        }
      }
    })();
    const streamError = await stream.then(
      () => undefined,
      (e: unknown) => e,
    );
    client.close();
    const sentBeforeKill = sent;
    await ingest.restart();
    const restartMs = await waitHealth(ingest, IngestService.typeName, ServingStatus.SERVING, 120_000);
    const again = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000 });
    const readIds = async () => {
      const { version } = await again.commitVersion({ dataset: 'sales' });
      const ids: string[] = [];
      for await (const chunk of again.readVersion({
        dataset: 'sales',
        id: version?.id ?? '',
        chunkSize: 5_000,
      })) {
        const column = chunk.batch?.columns.find((c) => c.name === 'event_id');
        if (column?.values.case === 'strings') ids.push(...column.values.value.values);
      }
      return { ids, count: Number(version?.recordCount) };
    };
    const afterCrash = await readIds();
    const present = new Set(afterCrash.ids);
    const ackedMissing = acked.flatMap((b) =>
      Array.from({ length: BATCH }, (_, i) => eventId(b * BATCH + i)).filter((id) => !present.has(id)),
    ).length;
    let partialBatches = 0;
    for (let b = 0; b < BATCHES; b++) {
      const found = Array.from({ length: BATCH }, (_, i) => eventId(b * BATCH + i)).filter((id) =>
        present.has(id),
      ).length;
      if (found !== 0 && found !== BATCH) partialBatches++;
    }
    // the producer redelivers everything (at-least-once): ingest must drop what it already has
    let accepted = 0;
    let duplicates = 0;
    for await (const response of again.ingest(
      (async function* () {
        for (const batch of batches) yield { batch };
      })(),
    )) {
      accepted += response.result?.accepted ?? 0;
      duplicates += response.result?.duplicates ?? 0;
    }
    const final = await readIds();
    again.close();
    const finalUnique = new Set(final.ids).size;
    const pass = record({
      scenario: 'ingest: kill -9 mid Ingest stream, restart, producer redelivers',
      headline: `ingest kill -9 mid-stream: ${ackedMissing} of ${acked.length * BATCH} acknowledged records lost, ${afterCrash.ids.length - present.size} duplicated; after redelivery ${finalUnique} of ${BATCHES * BATCH} records, each once`,
      injected: `an Ingest stream of ${BATCHES} batches x ${BATCH} records (Postgres); SIGKILL after ${KILL_AFTER} acknowledgements; restart on the same port and database; then the producer resends all ${BATCHES} batches`,
      measured: {
        'stream error seen by the producer':
          streamError instanceof RpcError ? status[streamError.code] : String(streamError),
        'batches acknowledged before the kill': acked.length,
        'batches sent before the kill': sentBeforeKill,
        'restart to SERVING (ms)': restartMs,
        'records committed after restart': afterCrash.count,
        'acknowledged records missing': ackedMissing,
        'duplicated records after restart': afterCrash.ids.length - present.size,
        'batches half-written': partialBatches,
        'on redelivery: accepted / dropped as duplicates': `${accepted} / ${duplicates}`,
        'records in the final committed version (unique)': `${final.count} (${finalUnique})`,
        expected: BATCHES * BATCH,
        'kill at (ms after start of stream, approx.)': killedAt > 0 ? 'after 5th ack' : 'never',
      },
      pass:
        ackedMissing === 0 &&
        afterCrash.ids.length === present.size &&
        partialBatches === 0 &&
        final.count === BATCHES * BATCH &&
        finalUnique === BATCHES * BATCH &&
        duplicates === afterCrash.count,
    });
    expect(acked.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(ackedMissing).toBe(0);
    expect(afterCrash.ids.length).toBe(present.size);
    expect(partialBatches).toBe(0);
    expect(final.count).toBe(BATCHES * BATCH);
    expect(finalUnique).toBe(BATCHES * BATCH);
    expect(duplicates).toBe(afterCrash.count);
    expect(pass).toBe(true);
  }, 240_000);
});

describe('inference', () => {
  it('under Predict load, kill -9 and restart: callers see only retryable statuses, and recover by themselves', async () => {
    const registry = await startService('registry', common);
    procs.push(registry);
    await waitHealth(registry, RegistryService.typeName);
    const registryClient = createClient(RegistryService, { address: registry.address, deadlineMs: 30_000 });
    await registerDemandModel(registryClient);
    registryClient.close();
    const inference = await startService('inference', {
      ...common,
      BALLAST_REGISTRY_ADDR: registry.address,
      BALLAST_TF_BACKEND: 'cpu',
    });
    procs.push(inference);
    await waitHealth(inference, InferenceService.typeName, ServingStatus.SERVING, 120_000);

    const client = createClient(InferenceService, {
      address: inference.address,
      deadlineMs: 2_000,
      retry: false,
    });
    // the kit's default client retries idempotent calls (Predict is IDEMPOTENT) on UNAVAILABLE
    const retrying = createClient(InferenceService, { address: inference.address, deadlineMs: 2_000 });
    const WORKERS = 4;
    const events: Array<{ t: number; code: number; ms: number }> = [];
    const retried: Array<{ t: number; code: number }> = [];
    let stop = false;
    const workers = Array.from({ length: WORKERS }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const t = Date.now();
        const code = await client.predict(predictRequest('demand', i * WORKERS + w)).then(
          () => status.OK,
          (e: unknown) => (e instanceof RpcError ? e.code : status.UNKNOWN),
        );
        events.push({ t, code, ms: Date.now() - t });
        if (code !== status.OK) await sleep(20); // a caller's backoff
      }
    });
    const retryingWorkers = Array.from({ length: 2 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const t = Date.now();
        const code = await retrying.predict(predictRequest('demand', i * 2 + w)).then(
          () => status.OK,
          (e: unknown) => (e instanceof RpcError ? e.code : status.UNKNOWN),
        );
        retried.push({ t, code });
        if (code !== status.OK) await sleep(20);
      }
    });
    await sleep(3_000);
    const killAt = Date.now();
    await inference.kill('SIGKILL');
    await sleep(1_000);
    const restartAt = Date.now();
    await inference.restart();
    // load continues until 3 s after the first OK that follows the restart; the first second
    // is the channel settling (a call that finds its subchannel still in reconnect backoff
    // fails fast with UNAVAILABLE), the 2 s after it must be all OK
    let firstOkAfter: number | undefined;
    for (let i = 0; i < 1_200; i++) {
      firstOkAfter ??= events.find((e) => e.t >= restartAt && e.code === status.OK)?.t;
      if (firstOkAfter !== undefined && Date.now() - firstOkAfter > 3_000) break;
      await sleep(50);
    }
    stop = true;
    await Promise.all([...workers, ...retryingWorkers]);
    client.close();
    retrying.close();
    const retriedFailed = retried.filter((e) => e.code !== status.OK);
    const retriedCodes = [...new Set(retriedFailed.map((e) => status[e.code] ?? String(e.code)))];
    const RETRYABLE = ['UNAVAILABLE', 'DEADLINE_EXCEEDED'];
    const before = events.filter((e) => e.t + e.ms < killAt); // answered before the kill
    const during = events.filter(
      (e) => e.t + e.ms >= killAt && (firstOkAfter === undefined || e.t < firstOkAfter),
    );
    const settling =
      firstOkAfter === undefined
        ? []
        : events.filter((e) => e.t >= firstOkAfter && e.t < firstOkAfter + 1_000);
    const after = firstOkAfter === undefined ? [] : events.filter((e) => e.t >= firstOkAfter + 1_000);
    const codes = new Map<string, number>();
    for (const e of during)
      codes.set(status[e.code] ?? String(e.code), (codes.get(status[e.code] ?? '') ?? 0) + 1);
    const nonRetryable = events.filter((e) => e.code !== status.OK && e.code !== status.UNAVAILABLE);
    const failedAfter = after.filter((e) => e.code !== status.OK).length;
    const okMs = (list: typeof events) => list.filter((e) => e.code === status.OK).map((e) => e.ms);
    const pass = record({
      scenario: 'inference: kill -9 under Predict load, restart',
      headline: `inference kill -9 under load: ${during.filter((e) => e.code === status.UNAVAILABLE).length} UNAVAILABLE, ${nonRetryable.length} non-retryable; first OK ${firstOkAfter === undefined ? 'never' : firstOkAfter - restartAt} ms after the restart, ${failedAfter} failures from 1 s after it`,
      injected: `${WORKERS} closed-loop callers (unary Predict, 2 s deadline, no client retries, 20 ms backoff after an error) and 2 on the kit's retrying client; SIGKILL after 3 s; restart 1 s later on the same port`,
      measured: {
        'calls before the kill (all OK)': `${before.length} (${before.filter((e) => e.code === status.OK).length} OK)`,
        'p50 / p99 Predict before the kill (ms)': `${percentile(okMs(before), 50)} / ${percentile(okMs(before), 99)}`,
        'statuses from the kill to the first answer after restart': [...codes]
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
        'non-retryable statuses (anything but OK/UNAVAILABLE)':
          nonRetryable.length === 0
            ? 'none'
            : [...new Set(nonRetryable.map((e) => status[e.code]))].join(', '),
        'restart to first OK (ms)': firstOkAfter === undefined ? 'never' : firstOkAfter - restartAt,
        'kill to first OK (ms)': firstOkAfter === undefined ? 'never' : firstOkAfter - killAt,
        'calls in the 1 s after the first OK (failed)': `${settling.length} (${settling.filter((e) => e.code !== status.OK).length})`,
        'calls in the 2 s after that (failed)': `${after.length} (${failedAfter})`,
        'p50 / p99 Predict after recovery (ms)': `${percentile(okMs(after), 50)} / ${percentile(okMs(after), 99)}`,
        "2 more callers on the kit's default client (retries on UNAVAILABLE, 4 attempts): calls, failed (statuses)": `${retried.length}, ${retriedFailed.length} (${retriedCodes.join(', ') || 'none'})`,
      },
      pass:
        nonRetryable.length === 0 &&
        firstOkAfter !== undefined &&
        failedAfter === 0 &&
        before.every((e) => e.code === status.OK) &&
        retriedCodes.every((c) => RETRYABLE.includes(c)),
    });
    expect(nonRetryable.map((e) => status[e.code])).toEqual([]);
    // A caller that retries within a 2 s deadline while inference is down and reloading may
    // run out of time: DEADLINE_EXCEEDED, as retryable for an idempotent call as UNAVAILABLE.
    expect(retriedCodes.filter((c) => !RETRYABLE.includes(c))).toEqual([]);
    expect(firstOkAfter).toBeDefined();
    expect(failedAfter).toBe(0);
    expect(pass).toBe(true);
  }, 240_000);
});

describe('trainer', () => {
  it('kill -9 mid-job: the job is taken up again and completes exactly once (one registered version)', async () => {
    const ingest = procs.find((p) => p.service === 'ingest') as ServiceProcess;
    const registry = procs.find((p) => p.service === 'registry') as ServiceProcess;
    const feature = await startService('feature', { ...common, BALLAST_INGEST_ADDR: ingest.address });
    procs.push(feature);
    const trainerEnv = {
      ...common,
      BALLAST_INGEST_ADDR: ingest.address,
      BALLAST_FEATURE_ADDR: feature.address,
      BALLAST_REGISTRY_ADDR: registry.address,
      BALLAST_TF_BACKEND: 'wasm',
      BALLAST_TRAINER_LOCK_MS: '3000', // a dead trainer's job is taken up again 3 s after its last renewal
    };
    const trainer = await startService('trainer', trainerEnv);
    procs.push(trainer);
    await waitHealth(feature, FeatureService.typeName);
    const ingestClient = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000 });
    const featureClient = createClient(FeatureService, { address: feature.address, deadlineMs: 120_000 });
    const registryClient = createClient(RegistryService, { address: registry.address, deadlineMs: 30_000 });
    await ingestClient.createDataset({ name: 'daily', schema: dailySchema });
    const { view } = await featureClient.applyFeatureView({ definition: demandView });
    await ingestClient.ingestBatch({ batch: dailySales('daily') });
    const datasetVersion = (await ingestClient.commitVersion({ dataset: 'daily' })).version?.id ?? '';
    await featureClient.materialize({ view: 'demand', viewVersion: view?.version ?? '', datasetVersion });
    ingestClient.close();
    featureClient.close();
    await registryClient.createModel({ name: 'forecast', task: Task.REGRESSION, ownerTeam: 'forecasting' });

    const redisClient = connectRedis(redis.url);
    const queue = createQueue(QueueNames.trainingRun, { connection: redisClient });
    const job: TrainingRunJob = {
      model: 'forecast',
      reason: 'reliability: kill -9 mid-job',
      featureView: 'demand',
      datasetVersion,
      spec: { hiddenUnits: [8], epochs: 150, batchSize: 32, learningRate: 0.01, seed: 7 },
    };
    const id = trainingJobId(job);
    const epochOf = async () =>
      ((await queue.getJob(id))?.progress as { epoch?: number } | undefined)?.epoch ?? 0;
    try {
      await queue.add('train', job, { jobId: id });
      const startedAt = Date.now();
      let epochAtKill = 0;
      for (let i = 0; i < 1_200 && epochAtKill < 3; i++) {
        epochAtKill = await epochOf();
        if (epochAtKill < 3) await sleep(100);
      }
      const killAt = Date.now();
      await trainer.kill('SIGKILL');
      // the producer, not knowing, enqueues the same request again: same job id, no second job
      await queue.add('train', job, { jobId: id });
      await trainer.restart();
      let state = '';
      for (let i = 0; i < 2_400 && state !== 'completed' && state !== 'failed'; i++) {
        state = (await (await queue.getJob(id))?.getState()) ?? 'missing';
        if (state !== 'completed' && state !== 'failed') await sleep(100);
      }
      const doneAt = Date.now();
      const final = await queue.getJob(id);
      const versions = (await registryClient.listModelVersions({ model: 'forecast', pageSize: 50 })).versions;
      const forJob = versions.filter((v) => v.lineage?.trainingJobId === id);
      const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
      const pass = record({
        scenario: 'trainer: kill -9 mid training job, restart',
        headline: `trainer kill -9 at epoch ${epochAtKill}: the job ${state} ${doneAt - killAt} ms later on the new trainer, ${forJob.length} version registered`,
        injected:
          'a training.run job (150 epochs, wasm) on the real ingest/feature/registry; SIGKILL of the trainer at epoch 3, the same request enqueued again while it is down, a new trainer started (BALLAST_TRAINER_LOCK_MS=3000)',
        measured: {
          'epoch reached before the kill': epochAtKill,
          'time to the kill (ms)': killAt - startedAt,
          'job state at the end': state,
          'kill to completion (ms)': doneAt - killAt,
          'attempts made': final?.attemptsMade ?? 'n/a',
          'versions registered for the job': forJob.length,
          'versions of the model': versions.length,
          'jobs in the queue (completed/failed/waiting/active/delayed)': `${counts.completed}/${counts.failed}/${counts.waiting}/${counts.active}/${counts.delayed}`,
        },
        pass: state === 'completed' && forJob.length === 1 && versions.length === 1 && counts.completed === 1,
      });
      expect(epochAtKill).toBeGreaterThanOrEqual(3);
      expect(state).toBe('completed');
      expect(forJob).toHaveLength(1);
      expect(versions).toHaveLength(1);
      expect(counts.completed).toBe(1);
      expect(pass).toBe(true);
    } finally {
      await queue.close();
      redisClient.disconnect();
      registryClient.close();
    }
  }, 300_000);
});
