import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { type ServiceProcess, startServiceProcess, writeBenchResult } from '@ballast/grpc-kit/testing';
import {
  BACKEND_PREFERENCES,
  type BackendName,
  BackendUnavailableError,
  selectBackend,
  trainTabularModel,
} from '@ballast/ml';
import {
  connectRedis,
  createQueue,
  DEFAULT_PREFIX,
  type ModelSpec,
  QueueNames,
  type TrainingRunJob,
  trainingJobId,
} from '@ballast/queue';
import { referenceDemandView, referenceSales, referenceSalesSchema, salesBatch, skuName } from '@ballast/sdk';
import * as tf from '@tensorflow/tfjs';
import { QueueEvents } from 'bullmq';
import type { Progress, TrainingOutcome } from '../pipeline.js';
import { readTrainingSet, split } from '../training-set.js';

/**
 * The trainer's throughput, each figure next to its limit on this machine:
 *  1. samples/s trained per TF.js backend on the reference workload's features, in this
 *     process: a bare `model.fit` of the same network (what a script would write) against
 *     `trainTabularModel` (what a job runs: checks, statistics, a seeded shuffle per epoch);
 *  2. enqueue-to-registered for ~100k rows: ingest, feature, registry and trainer as their
 *     own processes (PGlite in a temporary directory, a Redis DB of its own, flushed), from
 *     `queue.add` to the job's completion (version registered, `candidate` set), with the
 *     stage breakdown from the job's progress events, next to a bare `model.fit` of the same
 *     spec on the same training rows (read once with GetTrainingSet) in this process. The
 *     overhead ratio is pipeline time / bare fit time.
 * Samples/s = training rows x epochs / seconds. Everything shares this machine's cores, so
 * each measurement is repeated (BENCH_REPEATS, BENCH_RUNS) and the least disturbed run is
 * the headline; every run and the machine's load average are recorded with the results.
 */
const env = process.env;
const WAREHOUSES = Number(env.BENCH_WAREHOUSES ?? 25);
const SKUS = Number(env.BENCH_SKUS ?? 40);
/** BENCH_ROWS sets the days: rows = warehouses x SKUs x days. */
const DAYS = env.BENCH_ROWS
  ? Math.max(14, Math.ceil(Number(env.BENCH_ROWS) / (WAREHOUSES * SKUS)))
  : Number(env.BENCH_DAYS ?? 100);
/** Epochs of the pipeline job and of its bare-fit limit. */
const EPOCHS = Number(env.BENCH_EPOCHS ?? 3);
/** Epochs of each per-backend measurement (part 1). */
const BACKEND_EPOCHS = Number(env.BENCH_BACKEND_EPOCHS ?? 1);
const BACKENDS = (env.BENCH_BACKENDS ?? 'tensorflow,wasm,cpu')
  .split(',')
  .map((b) => b.trim()) as BackendName[];
/** The backend the trainer process runs (BALLAST_TF_BACKEND). */
const TRAINER_BACKEND = (env.BENCH_TRAINER_BACKEND ?? 'wasm') as BackendName;
/** Repeats of each per-backend measurement; the best is reported. */
const REPEATS = Number(env.BENCH_REPEATS ?? 3);
/** Pipeline runs, each beside its own bare fit; the first is the trainer process's first job. */
const RUNS = Number(env.BENCH_RUNS ?? 3);
const HOLDOUT = Number(env.BENCH_HOLDOUT ?? 0.2);
const REDIS_URL = env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
const INGEST_BATCH = 5_000;
/** The demo's architecture and optimiser (libs/sdk/src/demo.ts), with fewer epochs. */
const SPEC: ModelSpec = {
  hiddenUnits: (env.BENCH_HIDDEN ?? '64,32').split(',').map(Number),
  epochs: EPOCHS,
  batchSize: Number(env.BENCH_BATCH ?? 32),
  learningRate: 0.01,
  seed: 42,
};

for (const b of [...BACKENDS, TRAINER_BACKEND])
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(b) || b === ('auto' as string))
    throw new Error(`unknown backend ${b}: expected tensorflow, wasm or cpu`);
// The bench flushes its Redis DB before and after: never the default DB 0, which a running suite uses.
const db = Number(new URL(REDIS_URL).pathname.slice(1) || 0);
if (!(db > 0)) throw new Error(`BENCH_REDIS_URL must name a Redis DB other than 0 (got ${REDIS_URL})`);

const here = dirname(fileURLToPath(import.meta.url));
const progress = (line: string) => process.stderr.write(`[trainer bench ${clock()}] ${line}\n`);
const began = performance.now();
const clock = () => `${((performance.now() - began) / 1000).toFixed(1).padStart(6)}s`;
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const load = () => loadavg().map((x) => round(x, 2));
const loadAtStart = load();

// ---------------------------------------------------------------- the same network, bare

/**
 * The network trainTabularModel builds (a frozen standardising Dense layer, the hidden
 * layers, a linear output) fitted the way a script would: one `model.fit` over all epochs
 * with tfjs's own shuffle. Timed from the data to the fitted model.
 */
async function bareFit(features: Float32Array, labels: Float32Array, width: number, spec: ModelSpec) {
  const rows = labels.length;
  const t0 = performance.now();
  const xs = tf.tensor2d(features, [rows, width]);
  const ys = tf.tensor2d(labels, [rows, 1]);
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [width], units: width, trainable: false }));
  for (const [i, units] of spec.hiddenUnits.entries())
    model.add(
      tf.layers.dense({
        units,
        activation: spec.activation ?? 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed * 1000 + i + 1 }),
      }),
    );
  model.add(
    tf.layers.dense({
      units: 1,
      kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed * 1000 }),
    }),
  );
  tf.tidy(() => {
    const { mean, variance } = tf.moments(xs, 0);
    // A constant column is only centred, as trainTabularModel does.
    const std = tf.where(tf.greater(variance, 0), tf.sqrt(variance), tf.onesLike(variance));
    model.layers[0]?.setWeights([tf.diag(tf.reciprocal(std)), tf.neg(tf.div(mean, std))]);
  });
  model.compile({ optimizer: tf.train.adam(spec.learningRate), loss: 'meanSquaredError' });
  const history = await model.fit(xs, ys, {
    epochs: spec.epochs,
    batchSize: spec.batchSize,
    shuffle: true,
    verbose: 0,
  });
  const seconds = (performance.now() - t0) / 1000;
  const loss = Number(history.history.loss?.at(-1));
  tf.dispose([xs, ys]);
  model.dispose();
  return { seconds, loss, samplesPerSecond: (rows * spec.epochs) / seconds };
}

async function tabularFit(features: Float32Array, labels: Float32Array, width: number, spec: ModelSpec) {
  const rows = labels.length;
  const t0 = performance.now();
  const trained = await trainTabularModel({
    features,
    featureCount: width,
    labels,
    task: 'regression',
    hiddenUnits: spec.hiddenUnits,
    epochs: spec.epochs,
    batchSize: spec.batchSize,
    learningRate: spec.learningRate,
    seed: spec.seed,
  });
  const seconds = (performance.now() - t0) / 1000;
  const loss = trained.history.at(-1)?.loss ?? Number.NaN;
  trained.model.dispose();
  return { seconds, loss, samplesPerSecond: (rows * spec.epochs) / seconds };
}

// ---------------------------------------------------------------- the reference workload

const DATASET = 'bench-sales';
const VIEW = 'bench-demand';
const MODEL = 'bench-demand';

// ---------------------------------------------------------------- services

const redis = connectRedis(REDIS_URL);
await redis.flushdb();
const dataDir = await mkdtemp(join(tmpdir(), 'ballast-trainer-bench-'));
const running: ServiceProcess[] = [];
const trainingQueue = createQueue(QueueNames.trainingRun, { connection: redis, telemetry: false });
const materializeQueue = createQueue(QueueNames.featuresMaterialize, { connection: redis, telemetry: false });
const eventsConnection = redis.duplicate();
const queueEvents = new QueueEvents(QueueNames.trainingRun, {
  connection: eventsConnection,
  prefix: DEFAULT_PREFIX,
});
queueEvents.on('error', () => {});

async function shutdown() {
  await Promise.allSettled(running.map((p) => p.stop()));
  await queueEvents.close().catch(() => {});
  eventsConnection.disconnect();
  await trainingQueue.close().catch(() => {});
  await materializeQueue.close().catch(() => {});
  await redis.flushdb().catch(() => {});
  redis.disconnect();
  await rm(dataDir, { recursive: true, force: true });
}

try {
  const common = { BALLAST_DATA_DIR: dataDir, BALLAST_DATABASE_URL: '', BALLAST_REDIS_URL: REDIS_URL };
  progress(`starting ingest, registry, feature, trainer (PGlite in ${dataDir}, ${REDIS_URL})`);
  // Each started at once; waited for where the next one needs it (feature reads from ingest).
  const start = (service: string, env: Record<string, string>) =>
    startServiceProcess({ package: `@ballast/${service}`, env, ready: false });
  const [ingest, registry] = await Promise.all([start('ingest', common), start('registry', common)]);
  running.push(ingest, registry);
  await ingest.ready(IngestService.typeName);
  const feature = await start('feature', { ...common, BALLAST_INGEST_ADDR: ingest.address });
  running.push(feature);
  const trainer = await start('trainer', {
    ...common,
    BALLAST_INGEST_ADDR: ingest.address,
    BALLAST_FEATURE_ADDR: feature.address,
    BALLAST_REGISTRY_ADDR: registry.address,
    BALLAST_TF_BACKEND: TRAINER_BACKEND,
  });
  running.push(trainer);
  await Promise.all([
    registry.ready(RegistryService.typeName),
    feature.ready(FeatureService.typeName),
    // The trainer serves no gRPC: its HTTP readiness probe.
    trainer.ready({ http: '/readyz' }),
  ]);
  const deadline = { deadlineMs: 300_000 };
  const ingestClient = createClient(IngestService, { address: ingest.address, ...deadline });
  const featureClient = createClient(FeatureService, { address: feature.address, ...deadline });
  const registryClient = createClient(RegistryService, { address: registry.address, ...deadline });

  // ---- setup, not part of the ratio: ingest, commit, materialize
  const setup: Record<string, number> = {};
  let t0 = performance.now();
  await ingestClient.createDataset({
    name: DATASET,
    description: 'daily units sold per warehouse and SKU (trainer bench)',
    schema: referenceSalesSchema(WAREHOUSES),
  });
  const { view } = await featureClient.applyFeatureView({
    definition: referenceDemandView({
      name: VIEW,
      dataset: DATASET,
      warehouses: WAREHOUSES,
      skus: SKUS,
      description: 'the demo view: planned price and promotion, day of week, warehouse, SKU',
    }),
  });
  if (!view) throw new Error('feature answered ApplyFeatureView without a view');
  const sales = referenceSales({ seed: 42, warehouses: WAREHOUSES, skus: SKUS, days: DAYS });
  progress(
    `ingesting ${sales.length} reference rows (${WAREHOUSES} warehouses x ${SKUS} SKUs (${skuName(0)}..${skuName(SKUS - 1)}) x ${DAYS} days)`,
  );
  let accepted = 0;
  for (let at = 0; at < sales.length; at += INGEST_BATCH) {
    const rows = sales.slice(at, at + INGEST_BATCH);
    const { result } = await ingestClient.ingestBatch({
      batch: salesBatch(DATASET, 'bench', rows),
    });
    accepted += result?.accepted ?? 0;
  }
  if (accepted !== sales.length) throw new Error(`ingest accepted ${accepted} of ${sales.length} rows`);
  setup.ingest_s = round((performance.now() - t0) / 1000, 1);

  t0 = performance.now();
  const { version } = await ingestClient.commitVersion({ dataset: DATASET });
  if (!version) throw new Error('ingest answered CommitVersion without a version');
  const datasetVersion = version.id;
  const materializeId = `${DATASET}.${datasetVersion}`;
  for (;;) {
    const job = await materializeQueue.getJob(materializeId);
    const state = await job?.getState();
    if (state === 'completed') break;
    if (state === 'failed') throw new Error(`materializing ${materializeId} failed: ${job?.failedReason}`);
    if (performance.now() - t0 > 240_000)
      throw new Error(`feature did not materialize ${materializeId} within 240 s:\n${feature.output()}`);
    await sleep(200);
  }
  setup.commit_and_materialize_s = round((performance.now() - t0) / 1000, 1);
  progress(`dataset version ${datasetVersion.slice(0, 12)} committed and materialized`);

  // ---- the training rows, read once: what the job will train on
  t0 = performance.now();
  const set = await readTrainingSet(featureClient, {
    view: VIEW,
    viewVersion: view.version,
    datasetVersion,
    validationFraction: HOLDOUT,
  });
  setup.get_training_set_s = round((performance.now() - t0) / 1000, 1);
  const train = split(set, 'train');
  progress(
    `training set: ${set.rows} rows x ${train.width} features (${train.rows} train, ${set.rows - train.rows} holdout, ${set.droppedRows} dropped)`,
  );

  // ---- 1. samples/s per backend, in this process
  const backends: Record<string, unknown>[] = [];
  const unavailable: { backend: string; reason: string }[] = [];
  const perBackend = { ...SPEC, epochs: BACKEND_EPOCHS };
  const warmRows = Math.min(2_048, train.rows);
  const best = (runs: { samplesPerSecond: number }[]) => Math.max(...runs.map((r) => r.samplesPerSecond));
  for (const backend of BACKENDS) {
    try {
      const selected = await selectBackend(backend);
      progress(`backend ${backend}: ${selected.reason}`);
      // A warm-up of each path (kernels compiled, wasm instantiated), not timed.
      const warm = {
        features: train.features.subarray(0, warmRows * train.width),
        labels: train.labels.subarray(0, warmRows),
      };
      await bareFit(warm.features, warm.labels, train.width, { ...perBackend, epochs: 1 });
      await tabularFit(warm.features, warm.labels, train.width, { ...perBackend, epochs: 1 });
      // Alternated, so that a burst of load elsewhere on the machine does not favour one side.
      const bare: Awaited<ReturnType<typeof bareFit>>[] = [];
      const tabular: Awaited<ReturnType<typeof tabularFit>>[] = [];
      for (let r = 0; r < REPEATS; r++) {
        bare.push(await bareFit(train.features, train.labels, train.width, perBackend));
        tabular.push(await tabularFit(train.features, train.labels, train.width, perBackend));
        progress(
          `  run ${r + 1}: bare model.fit ${Math.round(bare.at(-1)?.samplesPerSecond ?? 0)} samples/s, trainTabularModel ${Math.round(tabular.at(-1)?.samplesPerSecond ?? 0)} samples/s`,
        );
      }
      backends.push({
        backend,
        rows: train.rows,
        features: train.width,
        epochs: BACKEND_EPOCHS,
        batch: SPEC.batchSize,
        bare_fit_samples_per_s: Math.round(best(bare)),
        train_tabular_samples_per_s: Math.round(best(tabular)),
        tabular_vs_bare: round(best(tabular) / best(bare), 2),
        runs: REPEATS,
        bare_runs: bare.map((r) => Math.round(r.samplesPerSecond)),
        tabular_runs: tabular.map((r) => Math.round(r.samplesPerSecond)),
        bare_loss: round(bare[0]?.loss ?? Number.NaN, 1),
        tabular_loss: round(tabular[0]?.loss ?? Number.NaN, 1),
      });
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      unavailable.push({ backend, reason: err.message });
      progress(`backend ${backend} unavailable: ${err.message.slice(0, 200)}`);
    }
  }

  // ---- 2. enqueue-to-registered, next to the bare fit of the same spec on the same rows
  // Progress, activation and completion as the events stream recorded them: a stream entry's
  // id starts with Redis's clock in ms, the same clock as Date.now() on this host.
  type JobEvent = { at: number; kind: string; progress?: Progress };
  const events = new Map<string, JobEvent[]>();
  const record = (jobId: string, eventId: string, kind: string, data?: unknown) =>
    events.get(jobId)?.push({
      at: Number(eventId.split('-')[0]),
      kind,
      ...(data ? { progress: data as Progress } : {}),
    });
  queueEvents.on('active', ({ jobId }, id) => record(jobId, id, 'active'));
  queueEvents.on('progress', ({ jobId, data }, id) => record(jobId, id, 'progress', data));
  queueEvents.on('completed', ({ jobId }, id) => record(jobId, id, 'completed'));
  await queueEvents.waitUntilReady();
  // Let the blocking XREAD start before the first job is added, so no event is read late.
  await sleep(500);

  const span = (from: number | undefined, to: number | undefined) =>
    from !== undefined && to !== undefined ? round((to - from) / 1000, 2) : null;

  /** One job, from queue.add to its completion, with its stages. */
  async function pipelineRun(run: number) {
    // A model per run: the job id derives from the request, so the same request would run once.
    const model = `${MODEL}-${run}`;
    await registryClient.createModel({
      name: model,
      task: Task.REGRESSION,
      ownerTeam: 'bench',
      description: 'units per warehouse, SKU and day (trainer bench)',
    });
    const request: TrainingRunJob = {
      model,
      reason: 'bench',
      featureView: VIEW,
      datasetVersion,
      spec: SPEC,
      eval: { holdoutFraction: HOLDOUT },
    };
    const jobId = trainingJobId(request);
    const log: JobEvent[] = [];
    events.set(jobId, log);
    const enqueuedAt = Date.now();
    const t0 = performance.now();
    const job = await trainingQueue.add('train', request, { jobId });
    const outcome = (await job.waitUntilFinished(queueEvents, 600_000)) as TrainingOutcome;
    const seconds = (performance.now() - t0) / 1000;
    const noticedAt = Date.now();
    await sleep(200);
    const { version: registered } = await registryClient.getModelVersion({ model, version: outcome.version });
    if (!registered?.aliases.includes('candidate'))
      throw new Error(`${model} v${outcome.version} is not the candidate`);
    if (outcome.rows.train !== train.rows)
      throw new Error(`the job trained on ${outcome.rows.train} rows, the bare fit on ${train.rows}`);

    // Each stage lasts from its first progress report to the next stage's.
    const first = (stage: Progress['stage']) => log.find((e) => e.progress?.stage === stage)?.at;
    const epochEvents = log.filter((e) => e.progress?.stage === 'training');
    const active = log.find((e) => e.kind === 'active')?.at;
    const completed = log.find((e) => e.kind === 'completed')?.at;
    const reading = first('reading');
    // After each epoch the job reports ETA = (time per epoch so far) x (epochs left): after
    // the first, that gives the first epoch's duration and so when fitting began.
    const epoch1 = epochEvents[0];
    const eta = epoch1?.progress?.etaMs;
    const fitStart = epoch1 && eta !== undefined && EPOCHS > 1 ? epoch1.at - eta / (EPOCHS - 1) : undefined;
    const stages = {
      queued_s: span(enqueuedAt, active),
      resolve_s: span(active, reading),
      read_training_set_s: span(reading, fitStart),
      fit_s: span(fitStart ?? reading, first('evaluating')),
      evaluate_and_profile_s: span(first('evaluating'), first('registering')),
      upload_register_alias_s: span(first('registering'), completed),
      completion_seen_s: span(completed, noticedAt),
    };
    const epochs = epochEvents.map((e, i) => ({
      epoch: e.progress?.epoch,
      seconds: span(i === 0 ? fitStart : epochEvents[i - 1]?.at, e.at),
      loss: round(e.progress?.loss ?? Number.NaN, 1),
    }));
    return { seconds, outcome, stages, epochs, model };
  }

  await selectBackend(TRAINER_BACKEND);
  const pipelineRuns: Record<string, unknown>[] = [];
  const stageRows: Record<string, unknown>[] = [];
  const epochRows: Record<string, unknown>[] = [];
  const limits: number[] = [];
  const totals: number[] = [];
  for (let run = 1; run <= RUNS; run++) {
    progress(`run ${run}: bare model.fit on ${TRAINER_BACKEND}, ${train.rows} rows x ${EPOCHS} epochs`);
    const limit = await bareFit(train.features, train.labels, train.width, SPEC);
    progress(`  ${limit.seconds.toFixed(1)} s; enqueueing the same spec (trainer on ${TRAINER_BACKEND})`);
    const loadBefore = load();
    const p = await pipelineRun(run);
    progress(`  ${p.model} v${p.outcome.version} registered after ${p.seconds.toFixed(1)} s`);
    limits.push(limit.seconds);
    totals.push(p.seconds);
    pipelineRuns.push({
      run,
      trainer_job: run === 1 ? 'first' : 'later',
      enqueue_to_registered_s: round(p.seconds, 2),
      bare_fit_s: round(limit.seconds, 2),
      overhead_ratio: round(p.seconds / limit.seconds, 2),
      pipeline_fit_s: p.stages.fit_s,
      pipeline_fit_vs_bare: p.stages.fit_s === null ? null : round(p.stages.fit_s / limit.seconds, 2),
      pipeline_samples_per_s: Math.round((train.rows * EPOCHS) / p.seconds),
      bare_fit_samples_per_s: Math.round(limit.samplesPerSecond),
      loadavg_1m: loadBefore[0],
      artifact_digest: p.outcome.artifactDigest,
    });
    stageRows.push({ run, ...p.stages });
    for (const e of p.epochs) epochRows.push({ run, ...e });
  }
  const pipeline = {
    rows: set.rows,
    train_rows: train.rows,
    holdout_rows: set.rows - train.rows,
    features: train.width,
    epochs: EPOCHS,
    trainer_backend: TRAINER_BACKEND,
    runs: RUNS,
    // The least disturbed run of each side.
    enqueue_to_registered_s: round(Math.min(...totals), 2),
    bare_fit_s: round(Math.min(...limits), 2),
    overhead_ratio: round(Math.min(...totals) / Math.min(...limits), 2),
  };

  ingestClient.close();
  featureClient.close();
  registryClient.close();
  const loadAtEnd = load();

  console.log(
    `trainer: samples/s per backend on the reference workload (${train.rows} training rows x ${train.width} features, ` +
      `hidden ${SPEC.hiddenUnits.join('x')}, batch ${SPEC.batchSize}, ${BACKEND_EPOCHS} epoch(s)), in-process`,
  );
  console.table(backends.map(({ bare_runs: _b, tabular_runs: _t, ...row }) => row));
  for (const u of unavailable) console.log(`unavailable: ${u.backend}: ${u.reason.split('. ')[0]}`);
  console.log(
    `enqueue-to-registered (${set.rows} rows, ${EPOCHS} epochs, trainer on ${TRAINER_BACKEND}) vs bare model.fit of the same spec on the same ${train.rows} rows, per run`,
  );
  console.table(pipelineRuns.map(({ artifact_digest: _digest, ...row }) => row));
  console.log(
    `best of ${RUNS}: enqueue-to-registered ${pipeline.enqueue_to_registered_s} s, bare model.fit ${pipeline.bare_fit_s} s, overhead ratio ${pipeline.overhead_ratio}`,
  );
  console.log('stages (from the job progress events)');
  console.table(stageRows);
  console.table(epochRows);
  console.log(`setup (not timed in the ratio): ${JSON.stringify(setup)}`);
  console.log(
    `load average: ${loadAtStart.join(' ')} at start, ${loadAtEnd.join(' ')} at end (${cpus().length} cores)`,
  );

  const out = writeBenchResult(here, 'trainer', {
    command: 'npm run bench -w @ballast/trainer',
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model ?? '',
      loadavg_start: loadAtStart,
      loadavg_end: loadAtEnd,
    },
    workload: {
      generator: 'referenceSales (libs/sdk/src/reference-data.ts), seed 42',
      warehouses: WAREHOUSES,
      skus: SKUS,
      days: DAYS,
      rows: sales.length,
      features: set.featureNames,
      holdout_fraction: HOLDOUT,
    },
    spec: SPEC,
    backends,
    unavailable,
    pipeline,
    pipeline_runs: pipelineRuns,
    stages: stageRows,
    epochs: epochRows,
    setup,
  });
  console.log(`wrote ${out}`);
} finally {
  await shutdown();
}
