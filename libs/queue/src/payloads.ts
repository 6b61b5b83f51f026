import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import type { QueueName } from './names.js';

/** A dataset version was committed; materialize the feature views that read it. */
export interface FeaturesMaterializeJob {
  datasetName: string;
  datasetVersion: string;
}

/** Train (or retrain) a model. `reason` says who asked and why: cli, schedule, drift... */
export interface TrainingRunJob {
  model: string;
  reason: string;
  requestedBy?: string;
  featureView?: string;
  datasetVersion?: string;
}

/** A batch of predictions was logged for a model version. */
export interface MonitorPredictionsJob {
  model: string;
  version: string;
  rows: number;
}

/** The payload each queue carries. Adding a queue means adding it here and in `payloadSchemas`. */
export interface JobTypes {
  'features.materialize': FeaturesMaterializeJob;
  'training.run': TrainingRunJob;
  'monitor.predictions': MonitorPredictionsJob;
}

// Typed against JobTypes so the runtime check and the compile-time type cannot drift apart.
// Object schemas build a fresh object holding only the declared keys, so a payload carrying
// `__proto__` or `constructor` keys cannot reach code that merges it into something else.
const name = z.string().trim().min(1);

export const payloadSchemas: { [N in QueueName]: z.ZodType<JobTypes[N]> } = {
  'features.materialize': z.object({ datasetName: name, datasetVersion: name }),
  'training.run': z.object({
    model: name,
    reason: name,
    requestedBy: name.optional(),
    featureView: name.optional(),
    datasetVersion: name.optional(),
  }),
  'monitor.predictions': z.object({ model: name, version: name, rows: z.number().int().nonnegative() }),
};

/**
 * A payload that does not have its queue's shape. Unrecoverable: retrying cannot fix the
 * data, so BullMQ fails the job at once instead of spending its attempts.
 */
export class InvalidPayloadError extends UnrecoverableError {
  constructor(
    readonly queue: QueueName,
    readonly issues: readonly string[],
  ) {
    super(`invalid ${queue} payload: ${issues.join('; ')}`);
    this.name = 'InvalidPayloadError';
  }
}

function describe(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Checks untrusted data (e.g. read back from Redis) against the queue's payload shape. */
export function parsePayload<N extends QueueName>(queue: N, data: unknown): JobTypes[N] {
  const result = payloadSchemas[queue].safeParse(data);
  if (!result.success) throw new InvalidPayloadError(queue, result.error.issues.map(describe));
  return result.data;
}
