import { setTimeout as sleep } from 'node:timers/promises';
import type { WatchDeploymentsResponseSchema } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { BallastError } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { currentAliases, lastSequence, listDeployments, lockDeployments } from './store.js';

type WatchEvent = MessageInitShape<typeof WatchDeploymentsResponseSchema>;

/**
 * Wakes watchers when this process changes an alias. Changes made by other registry
 * replicas reach watchers through the poll instead (the history table is the truth; this
 * only makes the common single-replica case immediate).
 */
export class DeploymentFeed {
  private wakers = new Set<() => void>();

  notify(): void {
    const wakers = this.wakers;
    this.wakers = new Set();
    for (const wake of wakers) wake();
  }

  /** Resolves at the next notify, after `pollMs`, or when `signal` aborts. */
  changed(pollMs: number, signal: AbortSignal): { promise: Promise<void> } {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.wakers.add(wake);
    const timer = sleep(pollMs, undefined, { signal }).catch(() => undefined);
    return {
      promise: Promise.race([woken, timer]).finally(() => this.wakers.delete(wake)),
    };
  }
}

export interface WatchOptions {
  model: string;
  afterSequence: bigint;
  pollMs: number;
  signal: AbortSignal;
  batch?: number;
}

/**
 * The current aliases (unless resuming), then every change in sequence order. Resuming
 * with the last sequence a client saw replays exactly what it missed: the history is
 * append-only and sequences commit in order (see lockDeployments).
 */
export async function* watchDeployments(
  sql: () => Sql,
  feed: DeploymentFeed,
  options: WatchOptions,
): AsyncGenerator<WatchEvent> {
  const batch = options.batch ?? 500;
  let after = options.afterSequence;
  if (after === 0n) {
    const snapshot = await sql().transaction(async (tx) => {
      await lockDeployments(tx);
      return { aliases: await currentAliases(tx, options.model), sequence: await lastSequence(tx) };
    });
    yield { event: { case: 'snapshot', value: snapshot } };
    after = snapshot.sequence;
  } else {
    const last = await lastSequence(sql());
    if (after > last)
      throw new BallastError(
        'out_of_range',
        `after_sequence ${after} is beyond the latest deployment (${last}): this registry's history is not the one the client watched; reconnect with after_sequence 0 for a fresh snapshot`,
      );
  }
  while (!options.signal.aborted) {
    // Listen before reading, so a change committed between the read and the wait still wakes us.
    const changed = feed.changed(options.pollMs, options.signal);
    const changes = await listDeployments(sql(), {
      model: options.model,
      afterSequence: after,
      order: 'asc',
      limit: batch,
    });
    for (const deployment of changes) {
      yield { event: { case: 'deployment', value: deployment } };
      after = deployment.sequence;
    }
    if (changes.length < batch) await changed.promise;
  }
}
