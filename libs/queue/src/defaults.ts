import type { DefaultJobOptions, KeepJobs } from 'bullmq';

/** Redis key prefix; tests pass their own so they never touch a service's queues. */
export const DEFAULT_PREFIX = 'ballast';

/**
 * The prefix BullMQ is given for queue `name`. BullMQ's scripts touch many keys of a queue at
 * once, which Redis Cluster allows only within one hash slot; so on a cluster each queue gets
 * a hash tag of its own, `<prefix>:{<name>}` (keys `ballast:{training.run}:training.run:wait`,
 * ...): a queue's keys share a slot while different queues land on different slots, and the
 * plain prefix still starts every key (SCAN MATCH ballast:* finds them). On one server the
 * prefix is used as given, so the keys of an existing deployment stay where they are. A
 * prefix that already holds a tag is the operator's choice and is kept. Producers and
 * workers on the same Redis URL always agree, since both derive it from the same connection.
 */
export function queuePrefix(prefix: string, name: string, connection: { isCluster: boolean }): string {
  return connection.isCluster && !/\{[^}]+\}/.test(prefix) ? `${prefix}:{${name}}` : prefix;
}

// Finished jobs stay in Redis for inspection but only the most recent ones: unbounded
// completed/failed sets are how a queue slowly eats Redis memory. Failures are kept longer
// because they are the ones someone goes looking for.
export const KEEP_COMPLETED: KeepJobs = { count: 1000 };
export const KEEP_FAILED: KeepJobs = { count: 5000 };

/**
 * A job that fails for a passing reason (Redis blip, a dependency restarting) gets two more
 * tries, 1 s then 2 s later. Jobs that cannot succeed throw UnrecoverableError and skip them.
 */
export const DEFAULT_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
};

export function reportError(kind: 'queue' | 'worker', name: string): (error: Error) => void {
  // BullMQ re-emits connection errors as 'error' events, and an EventEmitter with no
  // 'error' listener throws, taking the process down when Redis restarts.
  return (error) => console.error(`@ballast/queue: ${kind} ${name}: ${error.message}`);
}
