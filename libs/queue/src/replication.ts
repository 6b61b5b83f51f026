import type { Cluster, Redis } from 'ioredis';

// connection.ts's RedisConnection, spelled out: connection.ts imports this module.
type RedisConnection = Redis | Cluster;

// The replicas a connection's producers wait for (BALLAST_REDIS_URL `?waitReplicas=N`), set by
// connectRedis. Kept beside the client rather than on it: the client is ioredis's object.
const waitReplicasOf = new WeakMap<RedisConnection, number>();

/** How long a write waits for its replicas before it counts as not acknowledged. */
export const REPLICA_WAIT_MS = 2_000;

// How long the check's own key (see confirmReplicated) outlives its last use.
const CHECK_KEY_TTL_MS = 60_000;

export function setWaitReplicas(connection: RedisConnection, replicas: number): void {
  if (replicas > 0) waitReplicasOf.set(connection, replicas);
}

export function waitReplicas(connection: RedisConnection): number {
  return waitReplicasOf.get(connection) ?? 0;
}

/**
 * Thrown when jobs reached a Redis master but not enough of its replicas in time, or were
 * not on the master that answered the check at all (a failover came between). Either way
 * they are not acknowledged; adding them again under the same job ids is safe.
 */
export class NotReplicatedError extends Error {
  constructor(
    readonly wanted: number,
    readonly confirmed: number,
    /** How many of the jobs the master that answered did not hold. */
    readonly missing = 0,
  ) {
    super(
      missing > 0
        ? `${missing} job(s) not found on the Redis master that answered (a failover took them): ` +
            'not acknowledged'
        : `written to the Redis master but confirmed by ${confirmed} of ${wanted} replicas within ` +
            `${REPLICA_WAIT_MS} ms: a failover now could lose it`,
    );
    this.name = 'NotReplicatedError';
  }
}

/**
 * Resolves once the connection's replicas (`?waitReplicas=N`) hold the jobs at `jobKeys`;
 * throws NotReplicatedError if they do not within REPLICA_WAIT_MS.
 *
 * Redis WAIT only counts the writes sent on the socket it is sent on, and the add may have
 * gone out on another: ioredis resends a command after a reconnect, and a failover moves the
 * connection to a new master that may never have received the job. So the check runs as one
 * pipeline on one socket of the master that holds the keys' slot (on a cluster, the jobs'
 * queue is one slot): EXISTS proves the jobs are on that master, a write of the check's own
 * key puts them behind a write of this socket in its replication stream, and WAIT then
 * counts the replicas that got that far.
 *
 * A job removed before the check (removeOnComplete: true and a fast worker) reads as
 * missing: refused, and added again, as at-least-once allows.
 */
export async function confirmReplicated(
  connection: RedisConnection,
  jobKeys: readonly string[],
  checkKey: string,
): Promise<void> {
  const wanted = waitReplicas(connection);
  if (wanted === 0 || jobKeys.length === 0) return;
  const results = await connection
    .pipeline()
    .exists(...jobKeys)
    .set(checkKey, '1', 'PX', CHECK_KEY_TTL_MS)
    .call('WAIT', wanted, REPLICA_WAIT_MS)
    .exec();
  const reply = (index: number): unknown => {
    const [err, value] = results?.[index] ?? [new Error('the replication check got no reply')];
    if (err) throw err;
    return value;
  };
  const present = Number(reply(0));
  reply(1);
  const confirmed = Number(reply(2));
  if (present < jobKeys.length) throw new NotReplicatedError(wanted, confirmed, jobKeys.length - present);
  if (confirmed < wanted) throw new NotReplicatedError(wanted, confirmed);
}
