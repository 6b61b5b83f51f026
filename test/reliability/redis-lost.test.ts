// Redis lost, not restarted (issue 17, item 9): the suite's own redis-server is killed and
// replaced by an empty one on the same port (a node replaced, a volume lost) under ingest and
// the trainer, with a training schedule, a materialize job and logged predictions queued.
// What Redis alone held is gone; what Postgres holds is announced again by the services'
// ordinary paths. The scenario asserts both, as REPORT.md states them.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames, type TrainingRunJob } from '@ballast/queue';
import { describe, expect, it } from 'vitest';
import { suiteRecorder } from './report.js';
import { ServingStatus, startService, suiteParts, tempDir, until, waitHealth } from './support.js';
import { salesBatch, salesSchema } from './workload.js';

const record = suiteRecorder(
  'redis-lost',
  'Redis lost: an empty Redis under ingest, the trainer and the queues',
);
const parts = suiteParts('redis-lost');

const SCHEDULE = 'retrain-demand';
const job: TrainingRunJob = {
  model: 'demand',
  reason: 'reliability: scheduled',
  featureView: 'demand',
  spec: { hiddenUnits: [4], epochs: 1, batchSize: 8, learningRate: 0.01, seed: 1 },
};

describe('Redis lost', () => {
  it('loses what only Redis held (schedules, queued jobs), keeps serving, and re-announces what Postgres holds', async () => {
    const env = { BALLAST_REDIS_URL: parts.redis.url, BALLAST_DATABASE_URL: parts.db.url };
    const ingest = await startService('ingest', { ...env, BALLAST_DATA_DIR: tempDir('redis-lost-ingest') });
    parts.procs.push(ingest);
    // Nobody answers at these addresses: each scheduled job is taken, then fails; taken is what counts here.
    const trainer = await startService('trainer', {
      ...env,
      BALLAST_DATA_DIR: tempDir('redis-lost-trainer'),
      BALLAST_TF_BACKEND: 'cpu',
      BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
      BALLAST_FEATURE_ADDR: '127.0.0.1:1',
      BALLAST_INGEST_ADDR: '127.0.0.1:1',
    });
    parts.procs.push(trainer);
    const trainerReady = async () =>
      (
        await fetch(`${trainer.httpUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(
          () => undefined,
        )
      )?.ok === true;
    await waitHealth(ingest, IngestService.typeName);
    await until(trainerReady, 'the trainer ready', trainer);

    const redis = connectRedis(parts.redis.url);
    const training = createQueue(QueueNames.trainingRun, { connection: redis });
    const materialize = createQueue(QueueNames.featuresMaterialize, { connection: redis });
    const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis });
    const client = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000 });
    try {
      const ticks = async () =>
        (await training.getJobs(['active', 'failed', 'completed', 'delayed', 'waiting'])).filter((j) =>
          j.id?.startsWith(`repeat:${SCHEDULE}:`),
        );
      const taken = async () =>
        (await training.getJobs(['active', 'failed', 'completed', 'delayed'])).filter((j) =>
          j.id?.startsWith(`repeat:${SCHEDULE}:`),
        ).length;
      // Before: a schedule ticking every second, a committed version's job, logged predictions.
      await training.upsertJobScheduler(SCHEDULE, { every: 1_000 }, { name: 'train', data: job });
      await until(async () => (await taken()) >= 2, 'two scheduled jobs taken by the trainer', trainer);
      await client.createDataset({ name: 'sales', schema: salesSchema() });
      await client.ingestBatch({ batch: salesBatch('sales', 0, 500) });
      const version = (await client.commitVersion({ dataset: 'sales' })).version?.id ?? '';
      const materializeId = `sales.${version}`;
      await predictions.addBulk(
        Array.from({ length: 5 }, (_, i) => ({
          name: 'log',
          data: {
            model: 'demand',
            version: '1',
            rows: 1,
            records: [
              {
                requestId: `r${i}`,
                time: Date.now(),
                latencyUs: 1,
                inputs: { price: [1] },
                outputs: { y: [1] },
              },
            ],
          },
        })),
      );
      const before = {
        schedulers: (await training.getJobSchedulers()).length,
        ticks: (await ticks()).length,
        materialize: (await materialize.getJob(materializeId)) ? 1 : 0,
        predictions: await predictions.count(),
      };

      // Lost: kill -9, the data directory emptied, an empty redis-server on the same port.
      const lostAt = Date.now();
      await parts.redis.stop();
      for (const entry of readdirSync(parts.redis.dir))
        rmSync(join(parts.redis.dir, entry), { recursive: true, force: true });
      await parts.redis.start();
      const keysAfter = await redis.dbsize();
      await until(async () => (await ingestServing()) && (await trainerReady()), 'both ready again', trainer);
      const readyMs = Date.now() - lostAt;
      const after = {
        schedulers: (await training.getJobSchedulers()).length,
        ticks: (await ticks()).length,
        materialize: (await materialize.getJob(materializeId)) ? 1 : 0,
        predictions: await predictions.count(),
      };

      // Recovered by the ordinary paths: CommitVersion of the same records announces the
      // version again (same job id); the schedule comes back when it is applied again
      // (`ballast apply` / `ballast schedule add`), and the trainer takes its ticks.
      const recommit = await client.commitVersion({ dataset: 'sales' });
      const reannounced = (await materialize.getJob(materializeId)) ? 1 : 0;
      await training.upsertJobScheduler(SCHEDULE, { every: 1_000 }, { name: 'train', data: job });
      await until(async () => (await taken()) >= 1, 'a scheduled job taken after the loss', trainer);
      const pass = record({
        scenario: 'Redis lost (an empty Redis on the same port) under ingest, the trainer and the queues',
        headline: `Redis lost: lost ${before.schedulers} training schedule, ${before.ticks} scheduled job records, ${before.materialize} queued materialize job and ${before.predictions} queued prediction logs (all held only by Redis); ingest and the trainer ready ${readyMs} ms after; recovered: the materialize job by CommitVersion (same version), the schedule by applying it again (the trainer took its next tick)`,
        injected:
          "the suite's redis-server (AOF) killed -9, its data directory removed, an empty one started on the same port, while ingest and the trainer run, a training schedule ticks every second, a committed version's materialize job and 5 logged-prediction jobs wait",
        measured: {
          'before: schedules / scheduled job records / materialize job / prediction jobs': `${before.schedulers} / ${before.ticks} / ${before.materialize} / ${before.predictions}`,
          'keys in the new Redis': keysAfter,
          'after: schedules / scheduled job records / materialize job / prediction jobs': `${after.schedulers} / ${after.ticks} / ${after.materialize} / ${after.predictions}`,
          'loss to ingest SERVING and trainer /readyz 200 again (ms; readiness is polled every 2 s, so a short outage may go unseen)':
            readyMs,
          'processes alive': `ingest ${ingest.alive()}, trainer ${trainer.alive()}`,
          'CommitVersion after: same version, created / materialize job back': `${recommit.version?.id === version}, ${recommit.created} / ${reannounced === 1}`,
          'schedule applied again: scheduled jobs taken by the trainer': await taken(),
          'not recovered by any service':
            'training schedules (Redis holds them; re-apply the ballast file), queued jobs not yet run (training.run, features.materialize until the next commit, monitor.predictions: those predictions are missing from the windows), job history',
        },
        pass:
          before.schedulers === 1 &&
          before.materialize === 1 &&
          before.predictions === 5 &&
          after.schedulers === 0 &&
          after.ticks === 0 &&
          after.materialize === 0 &&
          after.predictions === 0 &&
          ingest.alive() &&
          trainer.alive() &&
          recommit.version?.id === version &&
          reannounced === 1,
      });
      expect(before).toMatchObject({ schedulers: 1, materialize: 1, predictions: 5 });
      expect(after).toEqual({ schedulers: 0, ticks: 0, materialize: 0, predictions: 0 });
      expect(recommit.version?.id).toBe(version);
      expect(reannounced).toBe(1);
      expect(await taken()).toBeGreaterThanOrEqual(1);
      expect(pass).toBe(true);
    } finally {
      client.close();
      await Promise.all([training.close(), materialize.close(), predictions.close()]);
      redis.disconnect();
    }

    async function ingestServing() {
      return (
        (await waitHealth(ingest, IngestService.typeName, ServingStatus.SERVING, 2_000).catch(() => -1)) >= 0
      );
    }
  }, 300_000);
});
