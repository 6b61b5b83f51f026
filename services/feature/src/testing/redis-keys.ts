import type { RedisConnection } from '@ballast/queue';
import type { Cluster, Redis } from 'ioredis';

/** Every key matching `pattern`, by SCAN; on a cluster, on every master. */
export async function keysMatching(redis: RedisConnection, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const server of servers(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

function servers(redis: RedisConnection): Redis[] {
  return redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis];
}

/**
 * Deletes every key matching `pattern` (a test's or a benchmark's own prefix), by SCAN; on a
 * cluster, on every master, one key at a time (a DEL of keys from several slots is refused).
 */
export async function deleteKeys(redis: RedisConnection, pattern: string): Promise<void> {
  for (const server of servers(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      if (redis.isCluster) {
        const pipeline = server.pipeline();
        for (const key of keys) pipeline.del(key);
        await pipeline.exec();
      } else await server.del(...keys);
    } while (cursor !== '0');
  }
}
