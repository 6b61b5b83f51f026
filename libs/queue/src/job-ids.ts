import { createHash } from 'node:crypto';
import type { TrainingRunJob } from './payloads.js';

/**
 * A training job's id is derived from what it asks for, so enqueueing the same request
 * twice (a retried CLI call, two alerts for one drift) runs it once: BullMQ refuses a
 * second job with an id it still holds. Who asked and why do not change the work, so they
 * are left out; everything that changes the result is in.
 */
export function trainingJobId(job: TrainingRunJob): string {
  const { requestedBy: _who, reason: _why, ...work } = job;
  return `train-${createHash('sha256').update(canonicalJson(work)).digest('hex').slice(0, 32)}`;
}

/** JSON with object keys sorted at every level, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([, x]) => x !== undefined)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, x]) => [k, sort(x)]),
          )
        : v;
  return JSON.stringify(sort(value));
}
