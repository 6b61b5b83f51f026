import { randomBytes } from 'node:crypto';
import { connectRedis, type RedisConnection } from '@ballast/queue';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { NearCache } from './near-cache.js';
import { type OnlineReadStats, OnlineStore, packVector } from './online.js';
import { TEST_REDIS_URL } from './test-feature.js';
import { lastValue, rowsOf } from './testing/online-rows.js';

// Against the real Redis: invalidations are Redis's own pushes, connection loss is a real
// CLIENT KILL. Each test has its own key prefix; the flush test uses a database no other
// suite touches.
const VIEW = 'v'.repeat(8);

describe('NearCache over real Redis', () => {
  let redis: RedisConnection;
  let other: RedisConnection;
  const open: NearCache[] = [];
  beforeAll(() => {
    redis = connectRedis(TEST_REDIS_URL);
    other = connectRedis(TEST_REDIS_URL);
  });
  afterEach(async () => {
    for (const cache of open.splice(0)) await cache.close();
  });
  afterAll(() => {
    redis.disconnect();
    other.disconnect();
  });

  async function setup(maxEntries = 100, maxAgeMs = 60_000) {
    const prefix = `t-near-${randomBytes(4).toString('hex')}`;
    const cache = NearCache.open(redis, `${prefix}:`, maxEntries, maxAgeMs);
    open.push(cache);
    await cache.tracking();
    const reads: OnlineReadStats[] = [];
    const store = new OnlineStore(redis, prefix, { cache, onRead: (s) => reads.push(s) });
    return { prefix, cache, store, reads };
  }

  it('serves repeated reads from memory and counts where each vector came from', async () => {
    const { store, reads } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10], b: [1, 20] }));
    const first = await store.readPacked(VIEW, ['a', 'b', 'missing']);
    const second = await store.readPacked(VIEW, ['a', 'b', 'missing']);
    expect(first.map(lastValue)).toEqual([10, 20, null]);
    expect(second.map(lastValue)).toEqual([10, 20, null]);
    // Missing entities are asked of Redis every time: only found vectors are kept.
    expect(reads).toEqual([
      { cached: 0, fetched: 3 },
      { cached: 2, fetched: 1 },
    ]);
  });

  it('a write in this process is seen by the very next read', async () => {
    const { store } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([10]);
    await store.write(VIEW, 'd2', rowsOf({ a: [2, 11] }));
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([11]);
  });

  it('drops a copy when another client writes or deletes the key', async () => {
    const { store, cache } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    await store.readPacked(VIEW, ['a']);
    expect(cache.size).toBe(1);
    await other.set(store.key(VIEW, 'a'), packVector('d9', 5, Float64Array.of(99)));
    await vi.waitFor(() => expect(cache.size).toBe(0));
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([99]);
    await other.del(store.key(VIEW, 'a'));
    await vi.waitFor(() => expect(cache.size).toBe(0));
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([null]);
  });

  it('does not keep what a read fetched if anything was invalidated while it was in flight', async () => {
    const { store, cache } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    const key = store.key(VIEW, 'a');
    const epoch = cache.epoch;
    const [stale] = await redis.mgetBuffer(key);
    await other.set(key, packVector('d2', 2, Float64Array.of(11)));
    await vi.waitFor(() => expect(cache.epoch).not.toBe(epoch));
    cache.fill(epoch, VIEW, ['a'], [stale ?? null], Date.now());
    expect(cache.size).toBe(0);
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([11]);
  });

  it('ignores keys outside its prefix', async () => {
    const { store, cache } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    await store.readPacked(VIEW, ['a']);
    const epoch = cache.epoch;
    const outside = `t-near-outside-${randomBytes(4).toString('hex')}`;
    await other.set(outside, 'x');
    await other.del(outside);
    // A round trip on the tracking side's server after the writes: any push would have come.
    await redis.ping();
    expect(cache.epoch).toBe(epoch);
    expect(cache.size).toBe(1);
  });

  it('stays within maxEntries, oldest out first, and reads a copy again after maxAgeMs', async () => {
    const { store, cache } = await setup(2, 200);
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 1], b: [1, 2], c: [1, 3] }));
    await store.readPacked(VIEW, ['a', 'b', 'c']);
    expect(cache.size).toBe(2);
    expect(cache.get(VIEW, 'a', Date.now())).toBeUndefined();
    expect(lastValue(cache.get(VIEW, 'c', Date.now()))).toBe(3);
    expect(cache.get(VIEW, 'c', Date.now() + 1_000)).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('empties on a flush', async () => {
    const { store, cache } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    await store.readPacked(VIEW, ['a']);
    const spare = connectRedis(TEST_REDIS_URL.replace(/\/\d+$/, '').concat('/6'));
    try {
      await spare.flushdb();
    } finally {
      spare.disconnect();
    }
    await vi.waitFor(() => expect(cache.size).toBe(0));
  });

  it('serves nothing from memory while its tracking connection is down, and resumes after', async () => {
    const { prefix, store, cache } = await setup();
    await store.write(VIEW, 'd1', rowsOf({ a: [1, 10] }));
    await store.readPacked(VIEW, ['a']);
    const list = (await other.client('LIST')) as string;
    const id = list
      .split('\n')
      .find((line) => line.includes(`name=ballast-near-cache:${prefix}:`))
      ?.match(/\bid=(\d+)/)?.[1];
    expect(id).toBeDefined();
    await other.client('KILL', 'ID', id as string);
    await vi.waitFor(() => expect(cache.active).toBe(false));
    expect(cache.size).toBe(0);
    // Written while nothing listens for invalidations: must not be missed once tracking is back.
    await other.set(store.key(VIEW, 'a'), packVector('d2', 2, Float64Array.of(12)));
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([12]);
    await cache.tracking();
    expect((await store.readPacked(VIEW, ['a'])).map(lastValue)).toEqual([12]);
    expect(cache.size).toBe(1);
  });
});
