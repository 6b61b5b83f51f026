import {
  type BallastQueue,
  connectRedis,
  createQueue,
  type PredictionRecord,
  QueueNames,
} from '@ballast/queue';

import type { NumericArray } from './executor.js';
import type { InferenceMetrics } from './metrics.js';

/** A logged request as the hot path leaves it: typed arrays, converted only when flushed. */
export interface PendingRecord {
  model: string;
  version: number;
  requestId: string;
  rows: number;
  time: number;
  latencyUs: number;
  inputs: { name: string; data: NumericArray }[];
  outputs: { name: string; data: NumericArray }[];
  traceId?: string | undefined;
  alias?: string | undefined;
  shadow?: boolean | undefined;
  entityKeys?: string[] | undefined;
  segments?: Record<string, string> | undefined;
  /** Each row's segments, only when the rows of one request do not all share `segments`. */
  rowSegments?: Record<string, string>[] | undefined;
  /** Each row's event time (ms), only when the request gave any. */
  rowTimes?: number[] | undefined;
}

export interface PredictionJob {
  model: string;
  version: string;
  rows: number;
  records: PredictionRecord[];
}

export interface PredictionLogOptions {
  /** Fraction of requests logged, 0-1. */
  sampleRate: number;
  /** Records held while Redis is slow or away; beyond it records are dropped (and counted). */
  maxBuffer: number;
  /** Records per flush. */
  maxBatch: number;
  flushIntervalMs: number;
  /** A flush that takes longer is given up (its records count as dropped). */
  flushTimeoutMs: number;
}

export const DEFAULT_PREDICTION_LOG: PredictionLogOptions = {
  sampleRate: 1,
  maxBuffer: 10_000,
  maxBatch: 500,
  flushIntervalMs: 250,
  flushTimeoutMs: 2_000,
};

interface Warner {
  warn(obj: object, msg?: string): void;
}

function toRecord(pending: PendingRecord): PredictionRecord {
  const tensors = (list: PendingRecord['inputs']) =>
    Object.fromEntries(list.map(({ name, data }) => [name, Array.from(data)]));
  const record: PredictionRecord = {
    requestId: pending.requestId,
    time: pending.time,
    latencyUs: pending.latencyUs,
    inputs: tensors(pending.inputs),
    outputs: tensors(pending.outputs),
  };
  if (pending.traceId) record.traceId = pending.traceId;
  if (pending.alias) record.alias = pending.alias;
  if (pending.shadow) record.shadow = true;
  if (pending.entityKeys?.some((k) => k)) record.entityKeys = pending.entityKeys;
  if (pending.segments && Object.keys(pending.segments).length > 0) record.segments = pending.segments;
  if (pending.rowTimes?.length === pending.rows) record.rowTimes = pending.rowTimes;
  return record;
}

const segmentId = (segments: Record<string, string>) =>
  Object.keys(segments)
    .sort()
    .map((k) => `${k}=${segments[k]}`)
    .join(',');

/**
 * The records of one logged request: one, or — when its rows belong to different segments
 * (warehouses in one call) — one per segment with that segment's rows, so monitor counts
 * every row in its own segment. Done at flush time, off the request's path.
 */
export function toRecords(pending: PendingRecord): PredictionRecord[] {
  const rowSegments = pending.rowSegments;
  if (!rowSegments || rowSegments.length !== pending.rows) return [toRecord(pending)];
  const groups = new Map<string, number[]>();
  rowSegments.forEach((segments, row) => {
    const id = segmentId(segments);
    groups.set(id, [...(groups.get(id) ?? []), row]);
  });
  const slice = (list: PendingRecord['inputs'], rows: number[]) =>
    list.map(({ name, data }) => {
      const size = data.length / pending.rows;
      // The same element type as the request's tensor (float32 or int32).
      const out: NumericArray =
        data instanceof Int32Array
          ? new Int32Array(rows.length * size)
          : new Float32Array(rows.length * size);
      for (const [i, row] of rows.entries()) out.set(data.subarray(row * size, (row + 1) * size), i * size);
      return { name, data: out };
    });
  return [...groups.values()].map((rows) =>
    toRecord({
      ...pending,
      rows: rows.length,
      inputs: slice(pending.inputs, rows),
      outputs: slice(pending.outputs, rows),
      entityKeys: pending.entityKeys && rows.map((row) => pending.entityKeys?.[row] ?? ''),
      rowTimes: pending.rowTimes && rows.map((row) => pending.rowTimes?.[row] ?? pending.time),
      segments: rowSegments[rows[0] as number],
      rowSegments: undefined,
    }),
  );
}

/**
 * The prediction log: requests are sampled into a bounded buffer on the hot path (no I/O,
 * no conversion), and a timer flushes them as `monitor.predictions` jobs, one job per model
 * version per flush. A slow or absent Redis only fills the buffer; what does not fit, or a
 * flush that fails or times out, is dropped and counted, never waited for.
 */
export class PredictionLog {
  readonly #buffer: PendingRecord[] = [];
  #dropped = 0;
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastWarn = 0;

  constructor(
    private readonly sink: (jobs: PredictionJob[]) => Promise<unknown>,
    private readonly options: PredictionLogOptions = DEFAULT_PREDICTION_LOG,
    private readonly metrics?: InferenceMetrics,
    private readonly log?: Warner,
  ) {}

  get dropped(): number {
    return this.#dropped;
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  /** Whether this request should be logged (sampling); decide before building its record. */
  sample(): boolean {
    return this.options.sampleRate >= 1 || Math.random() < this.options.sampleRate;
  }

  record(record: PendingRecord): void {
    if (this.#buffer.length >= this.options.maxBuffer) {
      this.#drop(1, 'prediction log buffer full');
      return;
    }
    this.#buffer.push(record);
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.#timer.unref();
  }

  #drop(count: number, why: string): void {
    this.#dropped += count;
    this.metrics?.logDropped.add(count);
    const now = Date.now();
    if (now - this.#lastWarn > 10_000) {
      this.#lastWarn = now;
      this.log?.warn({ dropped: this.#dropped, why }, `prediction log dropping records: ${why}`);
    }
  }

  /** Sends what is buffered (at most maxBatch records); one flush at a time. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flushOnce().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const taken = this.#buffer.splice(0, this.options.maxBatch);
    if (taken.length === 0) return;
    const groups = new Map<string, PredictionJob>();
    for (const pending of taken) {
      const key = `${pending.model}\u0000${pending.version}`;
      let job = groups.get(key);
      if (!job) {
        job = { model: pending.model, version: String(pending.version), rows: 0, records: [] };
        groups.set(key, job);
      }
      job.records.push(...toRecords(pending));
      job.rows += pending.rows;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.sink([...groups.values()]),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer in ${this.options.flushTimeoutMs} ms`)),
            this.options.flushTimeoutMs,
          );
        }),
      ]);
      this.metrics?.logged.add(taken.length);
    } catch (error) {
      this.#drop(taken.length, `enqueueing failed: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the timer and flushes what is left (bounded by the flush timeout per batch). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#flushing;
    while (this.#buffer.length > 0) {
      const before = this.#dropped;
      await this.flush();
      if (this.#dropped > before) {
        this.#drop(this.#buffer.length, 'closing');
        this.#buffer.length = 0;
      }
    }
  }
}

/**
 * The `monitor.predictions` queue on a Redis connection of its own that fails fast (no
 * offline queue, one retry) instead of holding commands while Redis is away.
 */
export function predictionQueue(url: string): {
  queue: BallastQueue<'monitor.predictions'>;
  redis: ReturnType<typeof connectRedis>;
  close(): Promise<void>;
} {
  const redis = connectRedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  const queue = createQueue(QueueNames.monitorPredictions, { connection: redis, onError: () => {} });
  return {
    queue,
    redis,
    async close() {
      await queue.close().catch(() => {});
      redis.disconnect();
    },
  };
}

/** Sends each flushed group as one `monitor.predictions` job. */
export function queueSink(
  queue: BallastQueue<'monitor.predictions'>,
): (jobs: PredictionJob[]) => Promise<unknown> {
  return (jobs) => queue.addBulk(jobs.map((data) => ({ name: 'predictions', data })));
}
