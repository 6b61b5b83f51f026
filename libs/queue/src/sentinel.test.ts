import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis, DEFAULT_REDIS_URL, type RedisConnection } from './connection.js';
import { QueueNames } from './names.js';
import type { TrainingRunJob } from './payloads.js';
import { createQueue } from './queue.js';
import { NotReplicatedError } from './replication.js';
import { testPrefix } from './test-support.js';
import { infoFields, type LocalRedisSentinel, startRedisSentinel, waitFor } from './testing/index.js';
import { createWorker } from './worker.js';

// Redis behind Sentinel (one master, one replica, one sentinel on loopback, started here):
// the connection asks the sentinel for the master and follows it through a failover.

const job = (i: number): TrainingRunJob => ({ model: `m${i}`, reason: 'sentinel test' });

describe('queues through Redis Sentinel', () => {
  let sentinel: LocalRedisSentinel;
  let connection: RedisConnection;

  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    connection = connectRedis(`${sentinel.url}?waitReplicas=1`);
  });

  afterAll(async () => {
    await closeAll([connection]);
    await sentinel?.stop();
  });

  it('works jobs on the master the sentinel names, and again on the replica it promotes', async () => {
    expect(connection).toBeInstanceOf(Redis);
    expect(infoFields(await (connection as Redis).info('server')).get('tcp_port')).toBe(
      String(sentinel.masterPort),
    );
    const prefix = testPrefix();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix, telemetry: false });
    const processed = new Set<string>();
    const worker = createWorker(
      QueueNames.trainingRun,
      async (j) => {
        processed.add(j.id as string);
      },
      { connection, prefix, telemetry: false, lockDuration: 5_000, stalledInterval: 5_000 },
    );
    try {
      const acknowledged: string[] = [];
      for (let i = 0; i < 20; i++) {
        await queue.add('before', job(i), { jobId: `before-${i}` });
        acknowledged.push(`before-${i}`);
      }
      await sentinel.kill(sentinel.masterPort);
      await waitFor('the sentinel to promote the replica', async () => {
        return (await sentinel.currentMaster()) === sentinel.replicaPort;
      });
      // With the old master gone no replica can confirm a write: adds are refused, not lost.
      // (The first tries may meet the connection being moved to the new master.)
      let refusal: unknown;
      await waitFor('an add answered by the new master', async () => {
        refusal = await queue.add('after', job(99), { jobId: 'after-0' }).then(
          () => undefined,
          (err: unknown) => err,
        );
        return !(refusal instanceof Error && /Connection is closed/.test(refusal.message));
      });
      expect(refusal).toBeInstanceOf(NotReplicatedError);
      await waitFor('every acknowledged job processed on the new master', async () =>
        acknowledged.every((id) => processed.has(id)),
      );
      expect(await queue.getJobState('after-0')).not.toBe('unknown');
      await waitFor('the unconfirmed job processed too', async () => processed.has('after-0'));
    } finally {
      await closeAll([worker, queue]);
    }
  }, 90_000);
});

describe('waitReplicas on a server with no replica', () => {
  it('refuses to acknowledge a job no replica confirmed, naming why', async () => {
    const connection = connectRedis(`${DEFAULT_REDIS_URL}?waitReplicas=1`);
    const prefix = testPrefix();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix, telemetry: false });
    try {
      const added = queue.add('lonely', job(1), { jobId: 'lonely' });
      await expect(added).rejects.toThrow(/confirmed by 0 of 1 replicas/);
      // It did reach the master: the refusal is about durability, not about the write.
      expect(await queue.getJobState('lonely')).toBe('waiting');
    } finally {
      await queue.obliterate({ force: true });
      await closeAll([queue, connection]);
    }
  });
});
