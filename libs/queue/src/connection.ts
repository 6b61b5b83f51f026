import { Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function redisUrl(): string {
  return process.env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL;
}

/**
 * An ioredis connection for queues and workers. Queues share the client as it is (one
 * socket for every producer in a process); BullMQ 6 builds clients from plain options only
 * through a lazy require('ioredis'), which its ESM build cannot do, so always hand it a client.
 *
 * `maxRetriesPerRequest: null` is what BullMQ demands of a worker's connection (workers
 * duplicate this client for their blocking reads and refuse one that gives up on commands).
 * The price is that a command waits for Redis to come back instead of failing; a producer
 * that would rather fail fast can pass `{ enableOfflineQueue: false }`.
 *
 * The caller owns the connection: closing a queue or worker never closes it (see closeAll).
 */
export function connectRedis(url: string = redisUrl(), options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, ...options });
}

/**
 * Whether a Redis answers PING at `url` within `timeoutMs`. Never throws, never retries,
 * and always tears its connection down, so it is safe in health checks and start-up probes.
 */
export async function pingRedis(url: string = redisUrl(), timeoutMs = 1000): Promise<boolean> {
  let client: Redis | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
    });
    // Failures are the answer here, not something to report.
    client.on('error', () => {});
    const probe = client;
    const answered = probe
      .connect()
      .then(() => probe.ping())
      .then(
        (reply) => reply === 'PONG',
        () => false,
      );
    return await Promise.race([answered, timedOut]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    client?.disconnect();
    // disconnect() only half-closes; against a server that is not reading, ioredis would
    // hold the socket until its disconnectTimeout (2 s). The probe is done with it now.
    client?.stream?.destroy();
  }
}
