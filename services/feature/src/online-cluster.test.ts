import { randomBytes } from 'node:crypto';
import { connectRedis, type RedisConnection } from '@ballast/queue';
import { type LocalRedisCluster, startRedisCluster } from '@ballast/queue/testing';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NearCache } from './near-cache.js';
import { type OnlineReadStats, OnlineStore, packVector } from './online.js';
import { groupBySlot } from './slot-batches.js';
import { lastValue, rowsOf } from './testing/online-rows.js';
import { deleteKeys } from './testing/redis-keys.js';

// The online store and its near cache on a real Redis Cluster (3 masters + 3 replicas on
// loopback, started here): reads cut into one MGET per slot come back in request order,
// invalidations arrive from every master, and a master killed under load is replaced by its
// replica with the store serving again and the cache tracking the new master.

const VIEW = 'c'.repeat(8);
const ENTITIES = 300;

const entity = (i: number) => `e${i}`;
const allEntities = (time: number, offset = 0) =>
  rowsOf(Object.fromEntries(Array.from({ length: ENTITIES }, (_, i) => [entity(i), [time, i + offset]])));

let cluster: LocalRedisCluster;
let redis: RedisConnection;
let other: RedisConnection;
const prefixes: string[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = connectRedis(cluster.url);
  other = connectRedis(cluster.url);
});

afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(redis, `${prefix}:*`).catch(() => {});
  redis?.disconnect();
  other?.disconnect();
  await cluster?.stop();
});

function newPrefix(): string {
  const prefix = `t-online-cluster-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}

describe('the online store on Redis Cluster', () => {
  it('reads entities spread over many slots and every master, in request order', async () => {
    const store = new OnlineStore(redis, newPrefix());
    expect(await store.write(VIEW, 'd1', allEntities(1))).toBe(ENTITIES);
    const keys = Array.from({ length: ENTITIES }, (_, i) => store.key(VIEW, entity(i)));
    expect(groupBySlot(keys).length).toBeGreaterThan(100);
    // Reversed, with absent entities between present ones.
    const asked = Array.from({ length: ENTITIES }, (_, i) => entity(ENTITIES - 1 - i)).flatMap((e, i) =>
      i % 50 === 0 ? [e, `absent-${i}`] : [e],
    );
    const found = await store.readPacked(VIEW, asked);
    expect(found.map(lastValue)).toEqual(
      asked.map((e) => (e.startsWith('absent') ? null : Number(e.slice(1)))),
    );
    // Newer wins on every node: an older write changes nothing, a newer one everything.
    expect(await store.write(VIEW, 'd0', allEntities(0, 1000))).toBe(0);
    expect(await store.write(VIEW, 'd2', allEntities(2, 1000))).toBe(ENTITIES);
    expect((await store.readPacked(VIEW, [entity(7), entity(250)])).map(lastValue)).toEqual([1007, 1250]);
  });

  it('keeps near-cache copies right with invalidations from every master', async () => {
    const prefix = newPrefix();
    const cache = NearCache.open(redis, `${prefix}:`, 10_000, 60_000);
    try {
      await cache.tracking();
      const reads: OnlineReadStats[] = [];
      const store = new OnlineStore(redis, prefix, { cache, onRead: (s) => reads.push(s) });
      await store.write(VIEW, 'd1', allEntities(1));
      const everyone = Array.from({ length: ENTITIES }, (_, i) => entity(i));
      await store.readPacked(VIEW, everyone);
      expect(reads).toEqual([{ cached: 0, fetched: ENTITIES }]);
      // The write's own invalidations reach the cache from three masters after it returns; a
      // fill that overlaps one is not kept, so the copies settle within a read or two.
      await vi.waitFor(async () => {
        await store.readPacked(VIEW, everyone);
        expect(reads.at(-1)).toEqual({ cached: ENTITIES, fetched: 0 });
      });
      // Another client changes one entity on each master; each copy is dropped by its push.
      const changed = await oneEntityPerMaster(store);
      expect(changed.length).toBe(3);
      for (const e of changed) await other.set(store.key(VIEW, e), packVector('d9', 9, Float64Array.of(-1)));
      await vi.waitFor(() => expect(cache.size).toBe(ENTITIES - changed.length), { timeout: 10_000 });
      expect((await store.readPacked(VIEW, changed)).map(lastValue)).toEqual(changed.map(() => -1));
      // A tracking connection dropped on a live master: the cache turns off, then back on.
      const [master] = (redis as Cluster).nodes('master');
      const list = String(await master?.client('LIST'));
      const id = list
        .split('\n')
        .find((line) => line.includes(`name=ballast-near-cache:${prefix}:`))
        ?.match(/\bid=(\d+)/)?.[1];
      expect(id).toBeDefined();
      await master?.client('KILL', 'ID', id as string);
      await vi.waitFor(() => expect(cache.active).toBe(false));
      await cache.tracking();
      await store.readPacked(VIEW, changed);
      expect(cache.get(VIEW, changed[0] as string, Date.now())).toBeDefined();
    } finally {
      await cache.close();
    }
  });

  it('serves again after a master is killed under load, and the cache follows the new master', async () => {
    const prefix = newPrefix();
    const cache = NearCache.open(redis, `${prefix}:`, 10_000, 60_000);
    const store = new OnlineStore(redis, prefix, { cache });
    await cache.tracking();
    await store.write(VIEW, 'd1', allEntities(1));
    // Every master has passed the writes to its replica before one of them dies.
    for (const node of (redis as Cluster).nodes('master')) await node.call('WAIT', 1, 5_000);
    const everyone = Array.from({ length: ENTITIES }, (_, i) => entity(i));
    const expected = everyone.map((_, i) => i);
    let stop = false;
    let served = 0;
    const wrong: unknown[] = [];
    const load = (async () => {
      while (!stop) {
        // Reads the cache answers never leave the microtask queue: let timers and I/O run.
        await new Promise((resolve) => setImmediate(resolve));
        let found: (Buffer | null)[];
        try {
          found = await store.readPacked(VIEW, everyone);
        } catch {
          continue; // the failover window: a read may fail, never answer wrongly
        }
        const values = found.map(lastValue);
        if (values.some((v, i) => v !== expected[i])) wrong.push(values);
        served++;
      }
    })();
    try {
      await vi.waitFor(() => expect(served).toBeGreaterThan(5));
      const victimEntity = entity(0);
      const victim = await cluster.masterOf(slotOf(store.key(VIEW, victimEntity)));
      await cluster.kill(victim);
      await cluster.settled();
      const servedAtFailover = served;
      await vi.waitFor(() => expect(served).toBeGreaterThan(servedAtFailover + 5), { timeout: 30_000 });
      stop = true;
      await load;
      // The cache empties and re-tracks the promoted master; a write there is seen.
      await cache.tracking(30_000);
      const newMaster = await cluster.masterOf(slotOf(store.key(VIEW, victimEntity)));
      expect(newMaster).not.toBe(victim);
      await store.readPacked(VIEW, [victimEntity]);
      expect(cache.get(VIEW, victimEntity, Date.now())).toBeDefined();
      await other.set(store.key(VIEW, victimEntity), packVector('d9', 9, Float64Array.of(-5)));
      await vi.waitFor(() => expect(cache.get(VIEW, victimEntity, Date.now())).toBeUndefined(), {
        timeout: 10_000,
      });
      expect((await store.readPacked(VIEW, [victimEntity])).map(lastValue)).toEqual([-5]);
      expect(wrong).toEqual([]);
    } finally {
      stop = true;
      await load;
      await cache.close();
    }
  }, 120_000);
});

function slotOf(key: string): number {
  return groupBySlot([key])[0]?.slot as number;
}

/** One entity whose key a different master serves, for each master. */
async function oneEntityPerMaster(store: OnlineStore): Promise<string[]> {
  const byMaster = new Map<number, string>();
  for (let i = 0; i < ENTITIES && byMaster.size < 3; i++) {
    const port = await cluster.masterOf(slotOf(store.key(VIEW, entity(i))));
    if (!byMaster.has(port)) byMaster.set(port, entity(i));
  }
  return [...byMaster.values()];
}
