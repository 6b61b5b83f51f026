import { randomBytes } from 'node:crypto';
import { type ServiceProcess, startServiceProcess, waitUntil } from '@ballast/grpc-kit/testing';
import { type BallastQueue, connectRedis, createQueue, DEFAULT_PREFIX, QueueNames } from '@ballast/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A training schedule with two trainer processes (dist/main.js) on one Redis: BullMQ's job
// schedulers are once-only by construction (each tick is one job whose id names the
// scheduler and the tick, and the next tick is added by whichever worker took the last),
// and this checks that it holds for Ballast's trainers: every tick is one job, run by one
// trainer, once.
//
// The template job is malformed on purpose (no model): each trainer refuses it as it would
// any bad payload, once and without retries, so every run is one recorded attempt and the
// test needs no feature, ingest or registry service. Redis DB 4 is this test's own.

const REDIS_URL = 'redis://127.0.0.1:6379/4';
const TICKS = 6;

describe('a training schedule with two trainers', () => {
  const trainers: ServiceProcess[] = [];
  const connection = connectRedis(REDIS_URL);
  let queue: BallastQueue<'training.run'>;

  beforeAll(async () => {
    queue = createQueue(QueueNames.trainingRun, { connection, prefix: DEFAULT_PREFIX, telemetry: false });
    await queue.obliterate({ force: true });
    for (let i = 0; i < 2; i++)
      trainers.push(
        await startServiceProcess({
          package: '@ballast/trainer',
          ready: { http: '/readyz' },
          telemetry: false,
          env: {
            BALLAST_REDIS_URL: REDIS_URL,
            BALLAST_TF_BACKEND: 'cpu',
            BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
            BALLAST_FEATURE_ADDR: '127.0.0.1:1',
            BALLAST_INGEST_ADDR: '127.0.0.1:1',
          },
        }),
      );
  }, 180_000);

  afterAll(async () => {
    for (const trainer of trainers) await trainer.stop().catch(() => undefined);
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    connection.disconnect();
  });

  it('runs each tick once, on one of the two trainers', async () => {
    const id = `retrain-test-${randomBytes(3).toString('hex')}`;
    // As `ballast schedule add` does (sdk scheduleTraining), minus the payload check.
    await queue.upsertJobScheduler(
      id,
      { every: 250, limit: TICKS },
      { name: 'train', data: { reason: 'schedule test' } as never },
    );
    const failed = async () => queue.getJobs(['failed']);
    await waitUntil(async () => (await failed()).length >= TICKS, `${TICKS} scheduled jobs run`, {
      timeoutMs: 120_000,
    });
    // The schedule has spent its ticks: nothing more is waiting to run.
    await waitUntil(
      async () => (await queue.getJobCountByTypes('waiting', 'delayed', 'active', 'prioritized')) === 0,
      'no scheduled job left',
      { timeoutMs: 60_000 },
    );
    const jobs = await failed();
    expect(jobs).toHaveLength(TICKS);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(TICKS);
    // One job per tick: the ids name the scheduler and distinct ticks.
    expect(new Set(jobs.map((j) => j.id?.replace(/^repeat:[^:]+:/, ''))).size).toBe(TICKS);
    for (const job of jobs) {
      expect(job.id).toMatch(new RegExp(`^repeat:${id}:\\d+$`));
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toContain('model');
    }
    expect((await queue.getCompleted()).length).toBe(0);
    for (const trainer of trainers) expect(trainer.alive()).toBe(true);
  });
});
