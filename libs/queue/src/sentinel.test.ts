import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis, DEFAULT_REDIS_URL, type RedisConnection } from './connection.js';
import { QueueNames } from './names.js';
import type { TrainingRunJob } from './payloads.js';
import { createQueue } from './queue.js';
import { confirmReplicated, NotReplicatedError } from './replication.js';
import { testPrefix } from './test-support.js';
import { infoFields, type LocalRedisSentinel, startRedisSentinel, waitFor } from './testing/index.js';
import { createWorker } from './worker.js';

// Redis behind Sentinel (one master, one replica, one sentinel on loopback, started here):
// the connection asks the sentinel for the master and follows it through a failover.

const job = (i: number): TrainingRunJob => ({ model: `m${i}`, reason: 'sentinel test' });

/**
 * Adds a job until it is acknowledged. A refusal (NotReplicatedError: the replica did not
 * confirm within REPLICA_WAIT_MS, as on a loaded machine) is the guarantee at work, and the
 * job id makes trying again safe; any other error fails the test.
 */
async function addAcknowledged(
  queue: ReturnType<typeof createQueue<'training.run'>>,
  name: string,
  data: TrainingRunJob,
  jobId: string,
): Promise<void> {
  for (;;) {
    try {
      await queue.add(name, data, { jobId });
      return;
    } catch (err) {
      if (!(err instanceof NotReplicatedError)) throw err;
    }
  }
}

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

  it('follows failovers without ioredis failoverDetector, and reconnects on READONLY', () => {
    const { options } = connection as Redis;
    // With it, a +switch-master announced while the client asks a sentinel for the master
    // ended the connection for good (every later add: 'Connection is closed.'); the failover
    // test below met it under load. Socket closes and READONLY replies are what it follows.
    expect(options.failoverDetector).toBeFalsy();
    expect(
      options.reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")),
    ).toBe(2);
    expect(options.reconnectOnError?.(new Error('ERR unknown command'))).toBe(false);
  });

  it('acknowledges a job only when the master that answers holds it', async () => {
    const prefix = testPrefix();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix, telemetry: false });
    try {
      await addAcknowledged(queue, 'held', job(1), 'held');
      const check = queue.toKey('replication-check');
      await confirmReplicated(connection, [queue.toKey('held')], check);
      // What a connection that a failover moved to a master that never got the job sees. WAIT
      // alone counts the replicas that caught up with that master, and would acknowledge it.
      const lost = confirmReplicated(connection, [queue.toKey('held'), queue.toKey('never-added')], check);
      await expect(lost).rejects.toThrow(NotReplicatedError);
      await expect(lost).rejects.toMatchObject({ missing: 1 });
    } finally {
      await queue.obliterate({ force: true });
      await closeAll([queue]);
    }
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
        await addAcknowledged(queue, 'before', job(i), `before-${i}`);
        acknowledged.push(`before-${i}`);
      }
      await sentinel.kill(sentinel.masterPort);
      await waitFor('the sentinel to promote the replica', async () => {
        return (await sentinel.currentMaster()) === sentinel.replicaPort;
      });
      // With the old master gone no replica can confirm a write: no add is acknowledged, and
      // the new master, once the connection reaches it, refuses with the reason. On the way
      // an add may also fail as the connection moves (the old socket closing, a command
      // aborted with it); those are not acknowledgements either, and are tried again.
      const moving: string[] = [];
      let outcome: unknown;
      await waitFor(
        'the new master to answer an add',
        async () => {
          outcome = await queue.add('after', job(99), { jobId: 'after-0' }).then(
            () => 'acknowledged',
            (err: unknown) => err,
          );
          if (outcome === 'acknowledged' || outcome instanceof NotReplicatedError) return true;
          moving.push(String(outcome));
          return false;
        },
        60_000,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; errors on the way: ${moving.join(' | ')}`);
      });
      expect(outcome).toBeInstanceOf(NotReplicatedError);
      expect(outcome).toMatchObject({ wanted: 1, confirmed: 0, missing: 0 });
      await waitFor('every acknowledged job processed on the new master', async () =>
        acknowledged.every((id) => processed.has(id)),
      );
      // Refused is not lost: it was written, and is worked like any other.
      expect(await queue.getJobState('after-0')).not.toBe('unknown');
      await waitFor('the unconfirmed job processed too', async () => processed.has('after-0'));
    } finally {
      await closeAll([worker, queue]);
    }
  }, 120_000);
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
