import type { Job } from 'bullmq';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis, type RedisConnection } from './connection.js';
import { QueueNames, queueNames, trainingCancelChannel } from './names.js';
import type { TrainingRunJob } from './payloads.js';
import { createQueue } from './queue.js';
import { testPrefix } from './test-support.js';
import { type LocalRedisCluster, startRedisCluster, waitFor } from './testing/index.js';
import { createWorker } from './worker.js';

// Queues on a real Redis Cluster (3 masters, 3 replicas on loopback, started here): BullMQ's
// multi-key scripts only run when each queue's keys share a slot, and a master killed under
// load must not take an acknowledged job with it.

let cluster: LocalRedisCluster;
let connection: RedisConnection;

beforeAll(async () => {
  cluster = await startRedisCluster();
  // Jobs are acknowledged once a replica holds them too: what makes a failover lose nothing.
  connection = connectRedis(`${cluster.url}?waitReplicas=1`);
});

afterAll(async () => {
  await closeAll([connection]);
  await cluster?.stop();
});

const job = (i: number): TrainingRunJob => ({ model: `m${i}`, reason: 'cluster test' });
const keySlot = async (key: string) => Number(await connection.call('CLUSTER', 'KEYSLOT', key));

describe('queues on Redis Cluster', () => {
  it('gives each queue a hash tag of its own, so queues spread over the slots', async () => {
    const prefix = testPrefix();
    const queues = queueNames.map((name) => createQueue(name, { connection, prefix }));
    try {
      expect(queues.map((q) => q.opts.prefix)).toEqual(queueNames.map((name) => `${prefix}:{${name}}`));
      const slots = await Promise.all(queues.map((q) => keySlot(q.toKey('wait'))));
      expect(new Set(slots).size).toBe(queueNames.length);
      // Every key of one queue is in its queue's slot.
      const [first] = queues;
      expect(await keySlot(first?.toKey('meta') ?? '')).toBe(slots[0]);
      expect(await keySlot(first?.toKey('events') ?? '')).toBe(slots[0]);
    } finally {
      await closeAll(queues);
    }
  });

  it('carries jobs from a producer to a worker, and names the cancel channel by the plain prefix', async () => {
    const prefix = testPrefix();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix, telemetry: false });
    const done = new Set<string>();
    const worker = createWorker(
      QueueNames.trainingRun,
      async (j) => {
        done.add(j.data.model);
        return j.data.model;
      },
      { connection, prefix, telemetry: false, concurrency: 4 },
    );
    try {
      await queue.addBulk(Array.from({ length: 10 }, (_, i) => ({ name: 'bulk', data: job(i) })));
      await queue.add('one', job(10));
      await waitFor('11 jobs done', async () => done.size === 11);
      expect(await queue.getCompletedCount()).toBe(11);
      expect(trainingCancelChannel(queue.opts.prefix ?? '')).toBe(trainingCancelChannel(prefix));
    } finally {
      await queue.obliterate({ force: true });
      await closeAll([worker, queue]);
    }
  });

  it('loses no acknowledged job when the queue master is killed and its replica takes over', async () => {
    const prefix = testPrefix();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix, telemetry: false });
    const processed = new Set<string>();
    const worker = createWorker(
      QueueNames.trainingRun,
      async (j: Job<TrainingRunJob>) => {
        processed.add(j.id as string);
      },
      { connection, prefix, telemetry: false, concurrency: 8, lockDuration: 5_000, stalledInterval: 5_000 },
    );
    const acknowledged = new Set<string>();
    let stop = false;
    // The producer: each job has its own id, so trying one again after a refusal is safe.
    const producing = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `job-${i}`;
        for (;;) {
          try {
            await queue.add('load', job(i), { jobId: id });
            acknowledged.add(id);
            break;
          } catch {
            // Not acknowledged (the master was away, or no replica confirmed it): try again.
            if (stop) return;
          }
        }
      }
    })();
    try {
      await waitFor('50 acknowledged jobs', async () => acknowledged.size >= 50);
      const victim = await cluster.masterOf(await keySlot(queue.toKey('wait')));
      await cluster.kill(victim);
      await cluster.settled();
      // The replica took over; the crashed node comes back and follows it.
      expect(await cluster.masterOf(await keySlot(queue.toKey('wait')))).not.toBe(victim);
      await cluster.restart(victim);
      await cluster.settled();
      const before = acknowledged.size;
      await waitFor('50 more acknowledged jobs', async () => acknowledged.size >= before + 50);
      stop = true;
      await producing;
      // A job the worker took from the old master just before it died is 'active' with a
      // lock nobody renews: BullMQ's stalled check puts it back once the lock expires.
      await waitFor(
        'every acknowledged job processed',
        async () => [...acknowledged].every((id) => processed.has(id)),
        60_000,
      );
      expect([...acknowledged].filter((id) => !processed.has(id))).toEqual([]);
      // A job whose completion the dead master took with it runs again once its lock
      // expires (at least once, never lost): the queue drains, it is not empty at once.
      const left = () => queue.getJobCounts('waiting', 'active', 'delayed');
      await waitFor(
        'the queue drained',
        async () => Object.values(await left()).every((n) => n === 0),
        60_000,
      );
      expect(await left()).toEqual({ waiting: 0, active: 0, delayed: 0 });
    } finally {
      stop = true;
      await producing;
      await queue.obliterate({ force: true }).catch(() => {});
      await closeAll([worker, queue]);
    }
  }, 180_000);
});

describe('connectRedis on a cluster', () => {
  it('returns an ioredis Cluster that found every master', async () => {
    expect(connection.isCluster).toBe(true);
    await waitFor('three masters', async () => (connection as Cluster).nodes('master').length === 3);
  });
});
