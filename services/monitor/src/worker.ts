import { unavailable } from '@ballast/grpc-kit';
import {
  createWorker,
  InvalidPayloadError,
  type JobOf,
  QueueNames,
  type RedisConnection,
} from '@ballast/queue';
import type { Sql } from '@ballast/storage';
import type { Worker } from 'bullmq';
import type { MonitorMetrics } from './metrics.js';
import type { ModelBaseline } from './model-baseline.js';
import { getBaseline, putBaseline } from './store/baselines.js';
import { addCounter } from './store/counters.js';
import { absorbJob } from './store/windows.js';
import { absorb } from './windows.js';

/**
 * Where a baseline comes from when none was set: the feature statistics named by the
 * version's lineage (see lineage-baseline.ts). Undefined: the version is unknown.
 */
export type BaselineResolver = (model: string, version: number) => Promise<ModelBaseline | undefined>;

/**
 * Baselines by model version, read from the store and kept for `ttlMs` (other replicas may
 * set them). A version with no stored baseline is resolved (once per `ttlMs`) from its
 * lineage, stored, and announced to `onResolved` (which installs the default alert rule).
 */
export class BaselineCache {
  readonly #entries = new Map<string, { at: number; value: ModelBaseline | undefined }>();

  constructor(
    private readonly sql: () => Sql,
    private readonly options: {
      ttlMs?: number;
      resolve?: BaselineResolver | undefined;
      onResolved?: (baseline: ModelBaseline) => Promise<void>;
    } = {},
  ) {}

  async get(model: string, version: number): Promise<ModelBaseline | undefined> {
    const key = `${model}\u0000${version}`;
    const hit = this.#entries.get(key);
    if (hit && Date.now() - hit.at < (this.options.ttlMs ?? 30_000)) return hit.value;
    let value = await getBaseline(this.sql(), model, version);
    if (!value && this.options.resolve) {
      try {
        value = await this.options.resolve(model, version);
      } catch (err) {
        // Not remembered: the next job (or BullMQ's retry of this one) asks again.
        throw unavailable(
          `cannot resolve the baseline of ${model} v${version}: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      if (value) {
        await putBaseline(this.sql(), value);
        await this.options.onResolved?.(value);
      }
    }
    this.#entries.set(key, { at: Date.now(), value });
    return value;
  }

  set(baseline: ModelBaseline): void {
    this.#entries.set(`${baseline.model}\u0000${baseline.version}`, { at: Date.now(), value: baseline });
  }
}

export interface PredictionsWorkerOptions {
  sql: () => Sql;
  baselines: BaselineCache;
  connection: RedisConnection;
  prefix?: string;
  concurrency?: number;
  autorun?: boolean;
  /** Called after a job's statistics are stored (alert evaluation hangs here). */
  onAbsorbed?: (model: ModelBaseline, windowStarts: number[]) => Promise<void>;
  metrics?: MonitorMetrics | undefined;
  /** Background work (counting a failed job) is handed here, so callers can wait for it. */
  track?: (work: Promise<unknown>) => void;
}

/**
 * Absorbs `monitor.predictions` jobs into the persisted windows. Bad input is skipped and
 * counted, never fatal: a job that is not a prediction batch (failed by the queue's payload
 * check, counted as malformed_jobs), a record that does not fit the model's features
 * (malformed_records), records of a model version without a baseline (unknown_model_records).
 */
export function startPredictionsWorker(options: PredictionsWorkerOptions): Worker {
  const { sql, baselines } = options;
  const processor = async (job: JobOf<'monitor.predictions'>) => {
    const { model, records = [] } = job.data;
    const version = Number(job.data.version);
    if (!Number.isInteger(version) || version <= 0) {
      await addCounter(sql(), 'malformed_jobs', 1);
      options.metrics?.jobs.add(1, { outcome: 'malformed' });
      return { skipped: 'version' };
    }
    const baseline = await baselines.get(model, version);
    if (!baseline) {
      await addCounter(sql(), 'unknown_model_records', records.length);
      options.metrics?.records.add(records.length, { model, outcome: 'unknown_model' });
      options.metrics?.jobs.add(1, { outcome: 'absorbed' });
      return { skipped: 'unknown model version' };
    }
    const absorbed = absorb(baseline, records);
    const fresh = await absorbJob(sql(), `${job.queueName}:${job.id}`, model, version, absorbed);
    if (fresh && options.onAbsorbed) {
      const starts = [...new Set([...absorbed.windows.values()].map((w) => w.key.windowStart))].sort(
        (a, b) => a - b,
      );
      await options.onAbsorbed(baseline, starts);
    }
    options.metrics?.jobs.add(1, { outcome: fresh ? 'absorbed' : 'duplicate' });
    if (fresh) {
      options.metrics?.records.add(absorbed.records, { model, outcome: 'absorbed' });
      if (absorbed.malformed)
        options.metrics?.records.add(absorbed.malformed, { model, outcome: 'malformed' });
    }
    return { records: absorbed.records, malformed: absorbed.malformed };
  };
  const worker = createWorker(QueueNames.monitorPredictions, processor, {
    connection: options.connection,
    concurrency: options.concurrency ?? 1,
    autorun: options.autorun ?? true,
    ...(options.prefix ? { prefix: options.prefix } : {}),
  });
  worker.on('failed', (job, error) => {
    if (error instanceof InvalidPayloadError || error.name === 'InvalidPayloadError') {
      options.metrics?.jobs.add(1, { outcome: 'malformed' });
      options.track?.(addCounter(sql(), 'malformed_jobs', 1).catch(() => {}));
    }
    // A job that failed for good (a dependency down through every attempt): its records are lost.
    else if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      options.metrics?.jobs.add(1, { outcome: 'failed' });
      options.track?.(addCounter(sql(), 'failed_jobs', 1).catch(() => {}));
    }
  });
  return worker;
}
