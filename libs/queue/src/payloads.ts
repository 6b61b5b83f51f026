import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import type { QueueName } from './names.js';

/** A dataset version was committed; materialize the feature views that read it. */
export interface FeaturesMaterializeJob {
  datasetName: string;
  datasetVersion: string;
}

/**
 * How to build and fit a model: a feed-forward network over the feature view's columns.
 * Every field is part of the version's lineage, so the same spec on the same data and
 * backend reproduces the same weights.
 */
export interface ModelSpec {
  /** Widths of the hidden layers, e.g. [32, 16]; [] is a linear (or logistic) model. */
  hiddenUnits: number[];
  activation?: 'relu' | 'tanh' | 'sigmoid' | 'elu' | undefined;
  /** Dropout after each hidden layer, 0 (default) to 0.9. */
  dropout?: number | undefined;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Stop when the validation loss has not improved by minDelta for `patience` epochs. */
  earlyStopping?: { patience: number; minDelta?: number | undefined } | undefined;
}

/** How a trained model is judged before it is registered. */
export interface EvalSpec {
  /** The newest fraction of rows by event time is the holdout (default 0.2). */
  holdoutFraction?: number | undefined;
  /** Fields whose values name the segments metrics are broken down by, e.g. warehouse_id. */
  segmentBy?: string[] | undefined;
}

/** Train (or retrain) a model. `reason` says who asked and why: cli, schedule, drift... */
export interface TrainingRunJob {
  model: string;
  reason: string;
  requestedBy?: string | undefined;
  featureView?: string | undefined;
  datasetVersion?: string | undefined;
  /** Absent: the spec of the model's latest version (a retraining). */
  spec?: ModelSpec | undefined;
  eval?: EvalSpec | undefined;
  /** Ask registry to promote the new version; its gate decides. */
  promote?: boolean | undefined;
  /**
   * The version this job re-runs (`ballast train --reproduce`): the trainer reports the
   * artifact digest it gets and registers nothing, so no alias moves and no version is added.
   */
  reproduces?: number | undefined;
}

/** One logged prediction request (inference's prediction log). */
export interface PredictionRecord {
  requestId: string;
  /** Milliseconds since the epoch. */
  time: number;
  latencyUs: number;
  /**
   * Inputs and outputs by tensor name, flattened row-major (all rows of the request). NaN and
   * ±Infinity travel as JSON null and come back as NaN.
   */
  inputs: Record<string, number[]>;
  outputs: Record<string, number[]>;
  traceId?: string | undefined;
  /** The alias that routed the request (`production`, `candidate`); empty for an exact version. */
  alias?: string | undefined;
  /** True when the request was a shadow copy whose answer was not returned. */
  shadow?: boolean | undefined;
  entityKeys?: string[] | undefined;
  segments?: Record<string, string> | undefined;
  /**
   * Each row's event time (milliseconds since the epoch), so that a replay of history lands
   * in history's windows. Absent (and in jobs queued before it existed): every row happened
   * at `time`.
   */
  rowTimes?: number[] | undefined;
}

/** A batch of predictions was logged for a model version. */
export interface MonitorPredictionsJob {
  model: string;
  version: string;
  rows: number;
  /** The logged requests themselves (sampled); absent from producers that only count. */
  records?: PredictionRecord[] | undefined;
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
// Records keep only own keys that cannot reach a prototype (`__proto__` and `constructor` are refused).
const safeKey = z.string().refine((key) => key !== '__proto__' && key !== 'constructor', 'reserved key');
// JSON has no NaN or Infinity: JSON.stringify writes them as null. Reading null back as NaN
// keeps a request with missing values (a null spike is what monitor must see) instead of
// refusing the whole job; monitor counts NaN as a null.
const tensorValue = z
  .custom<number | null>((v) => typeof v === 'number' || v === null, 'must be a number or null')
  .transform((v) => (v === null ? Number.NaN : v));
const tensors = z.record(safeKey, z.array(tensorValue));
const predictionRecord: z.ZodType<PredictionRecord> = z.object({
  requestId: z.string(),
  time: z.number(),
  latencyUs: z.number().nonnegative(),
  inputs: tensors,
  outputs: tensors,
  traceId: z.string().optional(),
  alias: z.string().optional(),
  shadow: z.boolean().optional(),
  entityKeys: z.array(z.string()).optional(),
  segments: z.record(safeKey, z.string()).optional(),
  rowTimes: z.array(z.number().finite()).optional(),
});

const count = (max: number) => z.number().int().min(1).max(max);
const modelSpec: z.ZodType<ModelSpec> = z.object({
  hiddenUnits: z.array(count(4096)).max(16),
  activation: z.enum(['relu', 'tanh', 'sigmoid', 'elu']).optional(),
  dropout: z.number().min(0).max(0.9).optional(),
  epochs: count(10_000),
  batchSize: count(65_536),
  learningRate: z.number().positive().max(10),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31),
  earlyStopping: z.object({ patience: count(1000), minDelta: z.number().min(0).optional() }).optional(),
});
const evalSpec: z.ZodType<EvalSpec> = z.object({
  holdoutFraction: z.number().gt(0).lt(1).optional(),
  segmentBy: z.array(name).max(8).optional(),
});

export const payloadSchemas: { [N in QueueName]: z.ZodType<JobTypes[N]> } = {
  'features.materialize': z.object({ datasetName: name, datasetVersion: name }),
  'training.run': z.object({
    model: name,
    reason: name,
    requestedBy: name.optional(),
    featureView: name.optional(),
    datasetVersion: name.optional(),
    spec: modelSpec.optional(),
    eval: evalSpec.optional(),
    promote: z.boolean().optional(),
    reproduces: z.number().int().positive().optional(),
  }),
  'monitor.predictions': z.object({
    model: name,
    version: name,
    rows: z.number().int().nonnegative(),
    records: z.array(predictionRecord).optional(),
  }),
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
