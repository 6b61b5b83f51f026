import { type Job, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis } from './connection.js';
import { QueueNames, queueNames } from './names.js';
import { InvalidPayloadError, type JobTypes, type TrainingRunJob } from './payloads.js';
import { createQueue } from './queue.js';
import { once, testPrefix } from './test-support.js';
import { createWorker } from './worker.js';

const prefix = testPrefix();
const connection = connectRedis();

describe('queue names', () => {
  it('are all accepted by BullMQ, which refuses a colon', async () => {
    const queues = queueNames.map((name) => createQueue(name, { connection, prefix }));
    try {
      expect(queues.map((q) => q.qualifiedName)).toEqual(queueNames.map((name) => `${prefix}:${name}`));
      expect(() => new Queue('training:run', { connection, prefix })).toThrow('Queue name cannot contain :');
    } finally {
      await closeAll(queues);
    }
  });
});

describe('jobs between a queue and a worker', () => {
  const queue = createQueue(QueueNames.trainingRun, { connection, prefix });
  // Stands in for a producer that skips the checks: another version, another language.
  const rawQueue = new Queue(QueueNames.trainingRun, { connection, prefix });
  const received: TrainingRunJob[] = [];
  const worker = createWorker(
    QueueNames.trainingRun,
    async (job) => {
      received.push(job.data);
      return `trained ${job.data.model}`;
    },
    { connection, prefix },
  );

  beforeAll(async () => {
    await Promise.all([queue.waitUntilReady(), rawQueue.waitUntilReady(), worker.waitUntilReady()]);
  });

  afterAll(async () => {
    await queue.obliterate({ force: true });
    await closeAll([worker, queue, rawQueue, connection]);
    expect(connection.status).toBe('end');
  });

  it('applies the defaults: retries with backoff, bounded history', async () => {
    expect(queue.defaultJobOptions).toMatchObject({
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 5000 },
    });
  });

  it('carries a typed payload to the processor and its result back', async () => {
    const payload: JobTypes['training.run'] = {
      model: 'demand',
      reason: 'schedule',
      requestedBy: 'ops',
      featureView: 'sales_daily',
      datasetVersion: 'v3',
    };
    const completed = once<[Job, unknown]>(worker, 'completed');
    const job = await queue.add('scheduled', payload);
    const [done, result] = await completed;
    expect(done.id).toBe(job.id);
    expect(result).toBe('trained demand');
    expect(received.at(-1)).toEqual(payload);
    expect((await queue.getJob(job.id!))?.returnvalue).toBe('trained demand');
  });

  it('hands the processor only the declared fields of an untrusted payload', async () => {
    const completed = once<[Job]>(worker, 'completed');
    await rawQueue.add('raw', { model: 'demand', reason: 'cli', admin: true });
    await completed;
    expect(received.at(-1)).toEqual({ model: 'demand', reason: 'cli' });
  });

  it('fails an invalid payload at once, with a reason that names the field', async () => {
    const failed = once<[Job | undefined, Error]>(worker, 'failed');
    const added = await rawQueue.add('raw', { model: 'demand', reason: 42 });
    const [job, error] = await failed;
    expect(job?.id).toBe(added.id);
    expect(error).toBeInstanceOf(InvalidPayloadError);

    const stored = await queue.getJob(added.id!);
    expect(stored?.failedReason).toContain('invalid training.run payload');
    expect(stored?.failedReason).toContain('reason');
    expect(stored?.failedReason).not.toContain('model');
    // Unrecoverable: one attempt, although the queue allows three.
    expect(stored?.attemptsMade).toBe(1);
    expect(await queue.getJobState(added.id!)).toBe('failed');
  });

  it('refuses an invalid payload when it is enqueued, before it reaches Redis', async () => {
    const before = await queue.getJobCounts();
    const bad = { model: '', reason: 'cli' } as TrainingRunJob;
    await expect(queue.add('bad', bad)).rejects.toThrow(/model: /);
    await expect(queue.addBulk([{ name: 'bad', data: bad }])).rejects.toBeInstanceOf(InvalidPayloadError);
    expect(await queue.getJobCounts()).toEqual(before);
  });
});
