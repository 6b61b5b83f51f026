import type { Cluster, Redis } from 'ioredis';

// connection.ts's RedisConnection, spelled out: connection.ts imports this module.
type RedisConnection = Redis | Cluster;

// The replicas a connection's producers wait for (BALLAST_REDIS_URL `?waitReplicas=N`), set by
// connectRedis. Kept beside the client rather than on it: the client is ioredis's object.
const waitReplicasOf = new WeakMap<RedisConnection, number>();

/** How long a write waits for its replicas before it counts as not acknowledged. */
export const REPLICA_WAIT_MS = 2_000;

export function setWaitReplicas(connection: RedisConnection, replicas: number): void {
  if (replicas > 0) waitReplicasOf.set(connection, replicas);
}

export function waitReplicas(connection: RedisConnection): number {
  return waitReplicasOf.get(connection) ?? 0;
}

/** Thrown when a write reached the master but not enough replicas in time. */
export class NotReplicatedError extends Error {
  constructor(
    readonly wanted: number,
    readonly confirmed: number,
  ) {
    super(
      `written to the Redis master but confirmed by ${confirmed} of ${wanted} replicas within ` +
        `${REPLICA_WAIT_MS} ms: a failover now could lose it`,
    );
    this.name = 'NotReplicatedError';
  }
}

/**
 * Waits until the connection's replicas hold every write it has sent so far (Redis WAIT
 * counts the writes of the connection it is sent on: the one BullMQ queues share, see
 * connectRedis). On a cluster a connection is one per node, so WAIT goes, as a pipeline with
 * `key`, to the node that holds `key`'s slot: the one the queue's writes went to.
 */
export async function confirmReplicated(connection: RedisConnection, key: string): Promise<void> {
  const wanted = waitReplicas(connection);
  if (wanted === 0) return;
  let confirmed: number;
  if (connection.isCluster) {
    const results = await connection.pipeline().exists(key).call('WAIT', wanted, REPLICA_WAIT_MS).exec();
    const [err, reply] = results?.[1] ?? [new Error('WAIT got no reply')];
    if (err) throw err;
    confirmed = Number(reply);
  } else {
    confirmed = Number(await connection.call('WAIT', wanted, REPLICA_WAIT_MS));
  }
  if (confirmed < wanted) throw new NotReplicatedError(wanted, confirmed);
}
