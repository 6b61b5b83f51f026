import { parseRedisUrl, REDIS_URL_FORMS, type RedisTarget } from '@ballast/config';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { setWaitReplicas } from './replication.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** What connectRedis returns: one server's (or Sentinel's master's) client, or a cluster's. */
export type RedisConnection = Redis | Cluster;

export function redisUrl(): string {
  return process.env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL;
}

/** The deployment a Redis URL names (libs/config redis-url.ts); throws on one it cannot read. */
export function redisTarget(url: string): RedisTarget {
  const target = parseRedisUrl(url);
  if (!target) throw new Error(`not a Redis URL (expected ${REDIS_URL_FORMS})`);
  return target;
}

// How often a cluster client asks for the slot map on its own, besides when a MOVED reply or
// a lost node tells it to: the near cache re-tracks masters on each refresh (near-cache.ts).
const CLUSTER_SLOTS_REFRESH_MS = 2_000;
// Options that belong to the cluster client itself rather than to its per-node connections.
const CLUSTER_LEVEL = ['enableOfflineQueue', 'lazyConnect', 'enableReadyCheck'] as const;

/**
 * An ioredis connection for queues and workers, to the deployment BALLAST_REDIS_URL names:
 * a `Redis` for one server or for Sentinel's current master (ioredis asks the sentinels and
 * follows a failover), a `Cluster` for Redis Cluster. Queues share the client as it is (one
 * socket, or one per node, for every producer in a process); BullMQ 6 builds clients from
 * plain options only through a lazy require('ioredis'), which its ESM build cannot do, so
 * always hand it a client.
 *
 * `maxRetriesPerRequest: null` is what BullMQ demands of a worker's connection (workers
 * duplicate this client for their blocking reads and refuse one that gives up on commands).
 * The price is that a command waits for Redis to come back instead of failing; a producer
 * that would rather fail fast can pass `{ enableOfflineQueue: false }`.
 *
 * `options` apply to every server connection (on a cluster, those that are about the client
 * as a whole, such as enableOfflineQueue, go to the cluster client); `clusterOptions` only
 * to a cluster client.
 *
 * The caller owns the connection: closing a queue or worker never closes it (see closeAll).
 */
export function connectRedis(
  url: string = redisUrl(),
  options: RedisOptions = {},
  clusterOptions: ClusterOptions = {},
): RedisConnection {
  const target = redisTarget(url);
  const connection = openConnection(target, { maxRetriesPerRequest: null, ...options }, clusterOptions);
  setWaitReplicas(connection, target.waitReplicas);
  return connection;
}

function openConnection(
  target: RedisTarget,
  common: RedisOptions,
  clusterOptions: ClusterOptions,
): RedisConnection {
  switch (target.kind) {
    case 'standalone':
      return new Redis(target.url, common);
    case 'sentinel':
      return new Redis({
        sentinels: target.sentinels,
        name: target.masterName,
        db: target.db,
        username: target.username,
        password: target.password,
        sentinelPassword: target.sentinelPassword,
        ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
        // No failoverDetector: in ioredis 5 it stays subscribed to +switch-master after the
        // master's socket dies, and a switch announced while the client is asking a sentinel
        // for the master aborts that reconnect for good (status 'end': every later command
        // fails 'Connection is closed.'; seen in the Sentinel failover test under load). A
        // failover is followed anyway: a dead master's socket closes, and Sentinel kills the
        // clients of a master it demotes. A write answered READONLY (a demoted master whose
        // clients were not dropped) reconnects, asking the sentinels again, and is resent.
        reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? 2 : false),
        ...common,
      });
    case 'cluster': {
      const clusterLevel: ClusterOptions = {};
      const perNode: RedisOptions = { ...common };
      for (const name of CLUSTER_LEVEL) {
        if (name in perNode) {
          Object.assign(clusterLevel, { [name]: perNode[name] });
          delete perNode[name];
        }
      }
      return new Cluster(target.nodes, {
        slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
        ...clusterLevel,
        ...clusterOptions,
        redisOptions: {
          username: target.username,
          password: target.password,
          ...(target.tls ? { tls: {} } : {}),
          ...perNode,
        },
      });
    }
  }
}

/**
 * Whether a Redis answers PING at `url` within `timeoutMs`. Never throws, never retries,
 * and always tears its connection down, so it is safe in health checks and start-up probes.
 */
export async function pingRedis(url: string = redisUrl(), timeoutMs = 1000): Promise<boolean> {
  let client: RedisConnection | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    client = connectRedis(
      url,
      {
        lazyConnect: true,
        connectTimeout: timeoutMs,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        reconnectOnError: () => false,
      },
      { clusterRetryStrategy: () => null },
    );
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
    const sockets = client instanceof Cluster ? client.nodes() : client ? [client] : [];
    for (const node of sockets) node.stream?.destroy();
  }
}
