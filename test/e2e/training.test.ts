import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  Aggregation,
  CalendarPart,
  FeatureService,
  SourceFieldType,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
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
import { eventually, type RunningProcess, startServiceProcess, waitServing } from './support.js';

// The training loop across real processes: ingest commits a dataset version, feature
// materializes a view over it, the trainer takes a training.run job, trains, and registers
// the version with its lineage in registry. Redis DB 7 and a temporary PGlite directory keep
// it apart from every other test.
const REDIS_URL = process.env.BALLAST_TEST_TRAINING_REDIS_URL ?? 'redis://127.0.0.1:6379/7';
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-training-e2e-'));
const running: RunningProcess[] = [];
const cliPath = join(
  dirname(createRequire(import.meta.url).resolve('@ballast/sdk/package.json')),
  'dist',
  'cli.js',
);

const WAREHOUSES = ['W1', 'W2'];
const SKUS = ['S1', 'S2'];
const DAYS = 60;
const START = Date.UTC(2024, 0, 1);

/** Units per warehouse, SKU and day: weekly pattern, promotions, price, a warehouse effect. */
function salesColumns() {
  const rows: {
    id: string;
    day: number;
    w: string;
    s: string;
    units: number;
    price: number;
    promo: boolean;
  }[] = [];
  for (const [wi, w] of WAREHOUSES.entries())
    for (const [si, s] of SKUS.entries())
      for (let d = 0; d < DAYS; d++) {
        const promo = (d + si) % 9 === 0;
        const price = 5 + si + ((d * 7) % 5) * 0.2;
        const weekly = [1, 0.9, 0.95, 1, 1.2, 1.5, 1.3][d % 7] ?? 1;
        const units = Math.round(
          (20 + wi * 10) * weekly * (promo ? 1.6 : 1) - price * 1.5 + ((d * 13 + si * 7) % 5),
        );
        rows.push({ id: `${w}-${s}-${d}`, day: START + d * 86_400_000, w, s, units, price, promo });
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
      { name: 'promo', values: { case: 'bools' as const, value: { values: column((r) => r.promo) } } },
    ],
  };
}

const spec = { hiddenUnits: [8], epochs: 8, batchSize: 32, learningRate: 0.01, seed: 11 };

describe('training across real services', () => {
  let redis: RedisConnection;
  let addresses: Record<'ingest' | 'feature' | 'registry', string>;
  let trainerEnv: Record<string, string>;
  let datasetVersion: string;

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    const common = { BALLAST_DATA_DIR: dataDir, BALLAST_DATABASE_URL: '', BALLAST_REDIS_URL: REDIS_URL };
    const [ingest, registry] = await Promise.all([
      startServiceProcess('ingest', common),
      startServiceProcess('registry', common),
    ]);
    const feature = await startServiceProcess('feature', {
      ...common,
      BALLAST_INGEST_ADDR: `127.0.0.1:${ingest.grpcPort}`,
    });
    trainerEnv = {
      ...common,
      BALLAST_INGEST_ADDR: `127.0.0.1:${ingest.grpcPort}`,
      BALLAST_FEATURE_ADDR: `127.0.0.1:${feature.grpcPort}`,
      BALLAST_REGISTRY_ADDR: `127.0.0.1:${registry.grpcPort}`,
      BALLAST_TF_BACKEND: 'wasm',
      // A killed trainer's job is taken up again 3 s after its last lock renewal.
      BALLAST_TRAINER_LOCK_MS: '3000',
    };
    const trainer = await startServiceProcess('trainer', trainerEnv);
    running.push(ingest, registry, feature, trainer);
    addresses = {
      ingest: `127.0.0.1:${ingest.grpcPort}`,
      feature: `127.0.0.1:${feature.grpcPort}`,
      registry: `127.0.0.1:${registry.grpcPort}`,
    };
    await Promise.all([
      waitServing(addresses.ingest, IngestService.typeName),
      waitServing(addresses.feature, FeatureService.typeName),
      waitServing(addresses.registry, RegistryService.typeName),
      eventually(
        async () => ((await fetch(`http://127.0.0.1:${trainer.httpPort}/readyz`)).ok ? true : undefined),
        'trainer ready',
        600,
      ),
    ]);

    // The data: a dataset committed in ingest and a view over it materialized by feature.
    const ingestClient = createClient(IngestService, { address: addresses.ingest, deadlineMs: 60_000 });
    const featureClient = createClient(FeatureService, { address: addresses.feature, deadlineMs: 120_000 });
    try {
      await ingestClient.createDataset({
        name: 'sales',
        schema: {
          fields: [
            { name: 'event_id', type: FieldType.STRING, required: true },
            { name: 'day', type: FieldType.TIMESTAMP, required: true },
            { name: 'warehouse_id', type: FieldType.STRING, required: true },
            { name: 'sku', type: FieldType.STRING, required: true },
            { name: 'units', type: FieldType.FLOAT, required: true },
            { name: 'price', type: FieldType.FLOAT, required: true },
            { name: 'promo', type: FieldType.BOOL, required: true },
          ],
          eventIdField: 'event_id',
          eventTimeField: 'day',
          entityFields: ['warehouse_id', 'sku'],
          segmentFields: ['warehouse_id'],
        },
      });
      const { view } = await featureClient.applyFeatureView({
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
              { name: 'promo', type: SourceFieldType.BOOL },
            ],
          },
          entityFields: ['warehouse_id', 'sku'],
          segmentFields: ['warehouse_id'],
          label: { name: 'units_next_day', field: 'units', leadDays: 1 },
          features: [
            { name: 'units', transform: { case: 'raw', value: { field: 'units' } } },
            { name: 'units_lag_1', transform: { case: 'lag', value: { field: 'units', days: 1 } } },
            {
              name: 'units_mean_7',
              transform: {
                case: 'rolling',
                value: { field: 'units', aggregation: Aggregation.MEAN, windowDays: 7 },
              },
            },
            { name: 'dow', transform: { case: 'calendar', value: { part: CalendarPart.DAY_OF_WEEK } } },
            { name: 'price', transform: { case: 'raw', value: { field: 'price' } } },
            { name: 'promo', transform: { case: 'raw', value: { field: 'promo' } } },
          ],
        },
      });
      const ingested = await ingestClient.ingestBatch({
        batch: { dataset: 'sales', source: 'test', ...salesColumns() },
      });
      expect(ingested.result?.accepted).toBe(WAREHOUSES.length * SKUS.length * DAYS);
      datasetVersion = (await ingestClient.commitVersion({ dataset: 'sales' })).version?.id ?? '';
      await featureClient.materialize({ view: 'demand', viewVersion: view?.version ?? '', datasetVersion });
    } finally {
      ingestClient.close();
      featureClient.close();
    }
  }, 240_000);

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [cliPath, ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, BALLAST_REDIS_URL: REDIS_URL, BALLAST_REGISTRY_ADDR: addresses.registry },
    });

  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('trains once per request, registers the version with its lineage, and reproduces its digest', async () => {
    const registry = createClient(RegistryService, { address: addresses.registry, deadlineMs: 30_000 });
    const queue = createQueue(QueueNames.trainingRun, { connection: redis });
    try {
      await registry.createModel({ name: 'demand', task: Task.REGRESSION, ownerTeam: 'forecasting' });
      type Outcome = { version: number; artifactDigest: string; promotion: string; promotionDetail?: string };
      const run = async (job: TrainingRunJob): Promise<Outcome> => {
        const added = await queue.add('train', job, { jobId: trainingJobId(job) });
        return eventually(
          async () => {
            const state = await added.getState();
            if (state === 'failed')
              throw new Error(`job failed: ${(await queue.getJob(added.id ?? ''))?.failedReason}`);
            return state === 'completed'
              ? ((await queue.getJob(added.id ?? ''))?.returnvalue as Outcome)
              : undefined;
          },
          `training job ${added.id}`,
          1_800,
        );
      };

      const request: TrainingRunJob = { model: 'demand', reason: 'test', featureView: 'demand', spec };
      // Enqueued twice (a retried CLI call): one job, one version.
      const [first] = await Promise.all([
        run(request),
        queue.add('train', request, { jobId: trainingJobId(request) }),
      ]);
      expect(first).toMatchObject({ model: 'demand', version: 1, reused: false, promotion: 'not requested' });
      const { version } = await registry.getModelVersion({ model: 'demand', version: 1 });
      expect(version?.lineage).toMatchObject({
        dataset: { name: 'sales', version: datasetVersion },
        featureView: { name: 'demand' },
        trainingJobId: trainingJobId(request),
        environment: { backend: 'wasm', tfjsVersion: '4.22.0' },
      });
      expect(version?.lineage?.config?.hyperparameters).toMatchObject({ hidden_units: '8', epochs: '8' });
      expect(version?.metrics.map((m) => `${m.name}/${m.segment}`)).toEqual(
        expect.arrayContaining(['mae/', 'rmse/', 'mae/warehouse_id=W1', 'mae/warehouse_id=W2']),
      );
      expect(version?.servingProfile?.latency.map((p) => p.batchSize)).toEqual([1, 32, 256]);
      expect(version?.servingProfile?.costPerMillion).toBeGreaterThan(0);
      expect(version?.aliases).toEqual(['candidate']);
      expect((await registry.getModel({ name: 'demand' })).model?.latestVersion).toBe(1);

      // Reproduce: the same spec on the same pinned lineage gives the same artifact, bit for bit.
      const again = await run({ ...request, datasetVersion, promote: true });
      expect(again).toMatchObject({
        version: 2,
        artifactDigest: version?.artifactDigest,
        promotion: 'promoted',
      });
      expect(
        (await registry.getVersionByAlias({ model: 'demand', alias: 'production' })).version?.version,
      ).toBe(2);

      // The CLI: reproduce v1 from its lineage (same digest, exit 0; it registers nothing and
      // leaves candidate on v2), and a retraining schedule.
      const reproduced = cli('train', '--reproduce', 'demand@1');
      expect(reproduced.stderr).toBe('');
      expect(reproduced.stdout).toContain(
        `reproduced: the same artifact digest ${version?.artifactDigest.slice(0, 12)}`,
      );
      expect(reproduced.status).toBe(0);
      expect(cli('schedule', 'add', 'demand', '--cron', '0 3 * * *', '--view', 'demand').stdout).toContain(
        'scheduled retrain-demand: 0 3 * * *',
      );
      expect(cli('schedule', 'list').stdout).toMatch(/retrain-demand\s+0 3 \* \* \*\s+next \d{4}-/);
      expect(cli('schedule', 'remove', 'retrain-demand').status).toBe(0);
      expect(cli('schedule', 'list').stdout).not.toContain('retrain-demand');
      expect(cli('models').stdout).toMatch(/demand\s+regression\s+v2\s+candidate=v2 production=v2/);

      // The gate refuses a retrained version that does not improve enough: it is registered
      // and made candidate, and production stays where it was.
      await registry.updatePromotionPolicy({ model: 'demand', policy: { minImprovement: 0.5 } });
      const refused = await run({ ...request, spec: { ...spec, seed: 12 }, promote: true });
      expect(refused).toMatchObject({ version: 3, promotion: 'refused' });
      expect(refused.promotionDetail).toContain('required at least 50.0% better');
      // Production was scored on the candidate's own holdout, and the gate compared those.
      const v3 = (await registry.getModelVersion({ model: 'demand', version: 3 })).version;
      expect(v3?.metrics.map((m) => `${m.name}/${m.evalSet}/${m.segment}`)).toEqual(
        expect.arrayContaining(['mae/holdout@v2/', 'mae/holdout@v2/warehouse_id=W1']),
      );
      expect(refused.promotionDetail).toContain("mae on v3's holdout");
      expect(
        (await registry.getVersionByAlias({ model: 'demand', alias: 'production' })).version?.version,
      ).toBe(2);
      expect(
        (await registry.getVersionByAlias({ model: 'demand', alias: 'candidate' })).version?.version,
      ).toBe(3);

      // Jobs naming a view, a model or a dataset version that does not exist fail once, with
      // the reason, and register nothing.
      const bad: [string, TrainingRunJob, string][] = [
        ['bad-view', { ...request, featureView: 'no-such-view' }, 'no-such-view'],
        ['bad-model', { ...request, model: 'no-such-model' }, 'no-such-model'],
        ['bad-dataset', { ...request, datasetVersion: 'f'.repeat(64) }, 'f'.repeat(12)],
      ];
      for (const [jobId, job, reason] of bad) {
        await queue.add('train', job, { jobId });
        const failed = await eventually(
          async () => ((await queue.getJob(jobId))?.failedReason ? queue.getJob(jobId) : undefined),
          `the ${jobId} job to fail`,
          600,
        );
        expect(failed?.failedReason).toContain(reason);
        expect(failed?.attemptsMade).toBe(1);
      }
      expect((await registry.getModel({ name: 'demand' })).model?.latestVersion).toBe(3);
      // Rows with a missing value (each entity's first day has no lag) are counted,
      // not trained on.
      expect((first as Outcome & { rows: { dropped: number } }).rows.dropped).toBeGreaterThan(0);
    } finally {
      await queue.close();
      registry.close();
    }
  }, 300_000);

  it('a trainer killed mid-job leaves the job to the next one: one version; a cancelled job registers none', async () => {
    const registry = createClient(RegistryService, { address: addresses.registry, deadlineMs: 30_000 });
    const queue = createQueue(QueueNames.trainingRun, { connection: redis });
    const latest = async () => (await registry.getModel({ name: 'demand' })).model?.latestVersion ?? 0;
    const epochOf = async (id: string) =>
      ((await queue.getJob(id))?.progress as { epoch?: number })?.epoch ?? 0;
    try {
      const before = await latest();
      const long = (seed: number): TrainingRunJob => ({
        model: 'demand',
        reason: 'test',
        featureView: 'demand',
        datasetVersion,
        spec: { ...spec, epochs: 400, seed },
      });
      const killed = long(31);
      const killedId = trainingJobId(killed);
      await queue.add('train', killed, { jobId: killedId });
      await eventually(async () => ((await epochOf(killedId)) >= 3 ? true : undefined), 'epoch 3', 600);
      const [trainer] = running.splice(running.length - 1, 1);
      await trainer?.stop('SIGKILL');
      running.push(await startServiceProcess('trainer', trainerEnv));
      const done = await eventually(
        async () => {
          const job = await queue.getJob(killedId);
          if ((await job?.getState()) === 'failed') throw new Error(`failed: ${job?.failedReason}`);
          return (await job?.getState()) === 'completed' ? job : undefined;
        },
        'the killed job to complete on the new trainer',
        1_800,
      );
      expect(done?.returnvalue).toMatchObject({ version: before + 1, reused: false });
      const versions = (await registry.listModelVersions({ model: 'demand', pageSize: 50 })).versions;
      expect(versions.filter((v) => v.lineage?.trainingJobId === killedId)).toHaveLength(1);
      expect(await latest()).toBe(before + 1);

      // Cancelled while running: it stops at the next epoch, fails once with the reason, and
      // registers nothing. `ballast jobs` lists both.
      const cancelled = long(32);
      const cancelledId = trainingJobId(cancelled);
      await queue.add('train', cancelled, { jobId: cancelledId });
      await eventually(async () => ((await epochOf(cancelledId)) >= 2 ? true : undefined), 'epoch 2', 600);
      const cancel = cli('jobs', 'cancel', cancelledId, '--reason', 'wrong spec');
      expect(cancel.stdout).toContain(`${cancelledId}: asked to stop`);
      expect(cancel.status).toBe(0);
      const failed = await eventually(
        async () => ((await queue.getJob(cancelledId))?.failedReason ? queue.getJob(cancelledId) : undefined),
        'the cancelled job to stop',
        600,
      );
      expect(failed?.failedReason).toBe('cancelled: wrong spec');
      expect(failed?.attemptsMade).toBe(1);
      expect(await latest()).toBe(before + 1);
      const listed = cli('jobs').stdout;
      expect(listed).toMatch(new RegExp(`${cancelledId}\\s+failed\\s+demand .*cancelled: wrong spec`));
      expect(listed).toMatch(new RegExp(`${killedId}\\s+completed\\s+demand .*v${before + 1} not requested`));
    } finally {
      await queue.close();
      registry.close();
    }
  }, 300_000);
});
