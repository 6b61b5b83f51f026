import { Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import type { RedisConnection } from './connection.js';

export interface Closable {
  close(): Promise<void>;
}

/**
 * Closes everything a service opened for its jobs, in the order that loses nothing:
 * workers first (each waits for its active jobs, which may still enqueue follow-ups),
 * then queues and anything else with close(), then the Redis connections they shared.
 * Every resource is closed even if one fails; the failures are thrown together after.
 */
export async function closeAll(
  resources: Iterable<Closable | RedisConnection | null | undefined>,
): Promise<void> {
  const workers: Closable[] = [];
  const others: Closable[] = [];
  const connections: RedisConnection[] = [];
  for (const resource of resources) {
    if (!resource) continue;
    if (resource instanceof Redis || resource instanceof Cluster) connections.push(resource);
    else if (resource instanceof Worker) workers.push(resource);
    else others.push(resource);
  }
  const errors: unknown[] = [];
  const stages = [
    () => workers.map((w) => w.close()),
    () => others.map((o) => o.close()),
    () => connections.map(quit),
  ];
  for (const stage of stages) {
    for (const result of await Promise.allSettled(stage())) {
      if (result.status === 'rejected') errors.push(result.reason);
    }
  }
  if (errors.length > 0)
    throw new AggregateError(errors, `closeAll: ${errors.length} resource(s) failed to close`);
}

async function quit(connection: RedisConnection): Promise<void> {
  if (connection.status === 'end') return;
  // QUIT needs a live connection; one that is down or reconnecting would wait for Redis to
  // return (maxRetriesPerRequest: null), so it is dropped instead.
  if (connection.status === 'ready') {
    const ended = new Promise((resolve) => connection.once('end', resolve));
    try {
      await connection.quit();
      // QUIT is answered before the socket closes; wait for it so "closed" means closed.
      await ended;
      return;
    } catch {
      // the socket went away while quitting
    }
  }
  connection.disconnect();
}
