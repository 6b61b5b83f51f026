import {
  type Job,
  type Meter,
  type Processor,
  Queue,
  type QueueOptions,
  type Telemetry,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import type { RedisConnection } from './connection.js';
import { DEFAULT_PREFIX, KEEP_COMPLETED, KEEP_FAILED, queuePrefix, reportError } from './defaults.js';
import type { QueueName } from './names.js';
import { type JobTypes, parsePayload } from './payloads.js';
import { queueTelemetry } from './telemetry.js';

export type JobOf<N extends QueueName, R = unknown> = Job<JobTypes[N], R, string>;

/** Receives a job whose `data` has already been checked against its queue's shape. */
export type JobProcessor<N extends QueueName, R = unknown> = (
  job: JobOf<N, R>,
  token?: string,
  signal?: AbortSignal,
) => Promise<R>;

export interface CreateWorkerOptions extends Omit<WorkerOptions, 'connection' | 'prefix' | 'telemetry'> {
  /** A client from connectRedis. The worker duplicates it and never closes the original. */
  connection: RedisConnection;
  /** Jobs processed at once by this worker; default 1. */
  concurrency?: number;
  /** Redis key prefix; default 'ballast'. Must match the producers' (on a cluster, queuePrefix tags it alike). */
  prefix?: string;
  /** Defaults to the shared bullmq-otel telemetry; `false` turns tracing off. */
  telemetry?: Telemetry | false;
  /** Where connection and processing-loop errors go; default: one line on stderr. */
  onError?: (error: Error) => void;
  /**
   * How often the queue's job counts by state are recorded as the `bullmq_queue_jobs` gauge
   * (what Grafana charts as queue depth); default 15 s, 0 never. Needs telemetry.
   */
  depthMetricMs?: number;
}

const DEPTH_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'] as const;

/** A meter whose gauges stop recording once `stopped()` says so. */
function untilStopped(meter: Meter, stopped: () => boolean): Meter {
  return {
    createCounter: (...args) => meter.createCounter(...args),
    createHistogram: (...args) => meter.createHistogram(...args),
    createGauge: (...args) => {
      const gauge = meter.createGauge(...args);
      return {
        record: (...values) => {
          if (!stopped()) gauge.record(...values);
        },
      };
    },
  };
}

/**
 * Records the queue's depth by state every `intervalMs` through BullMQ's own
 * recordJobCountsMetric, until the worker closes. A failed count (Redis away) is skipped:
 * the gauge keeps its last value, and the worker's own error handler reports the outage.
 */
function recordDepth(worker: Worker, name: string, queueOptions: QueueOptions, intervalMs: number) {
  let stopped = false;
  // A count already on its way when the worker closes would otherwise still be recorded
  // after close: recordJobCountsMetric reads Redis first and records after.
  const { telemetry } = queueOptions;
  const queue = new Queue(name, {
    ...queueOptions,
    ...(telemetry?.meter
      ? { telemetry: { ...telemetry, meter: untilStopped(telemetry.meter, () => stopped) } }
      : {}),
  });
  queue.on('error', () => {});
  const tick = () => {
    queue.recordJobCountsMetric(...DEPTH_STATES).catch(() => {});
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick();
  worker.once('closing', () => {
    stopped = true;
    clearInterval(timer);
    queue.close().catch(() => {});
  });
}

export function createWorker<N extends QueueName, R = unknown>(
  name: N,
  processor: JobProcessor<N, R>,
  options: CreateWorkerOptions,
): Worker<JobTypes[N], R, string> {
  const {
    connection,
    prefix: basePrefix = DEFAULT_PREFIX,
    telemetry,
    onError,
    depthMetricMs = 15_000,
    ...rest
  } = options;
  const prefix = queuePrefix(basePrefix, name, connection);
  // Job data is whatever JSON sits in Redis: any producer, any version, or a hand edit.
  // Checking it here fails a malformed job with a reason naming the field (and, being
  // unrecoverable, without retries) before the processor can act on it.
  const checked: Processor<JobTypes[N], R, string> = async (job, token, signal) => {
    job.data = parsePayload(name, job.data);
    return processor(job, token, signal);
  };
  const worker = new Worker<JobTypes[N], R, string>(name, checked, {
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    ...rest,
    connection,
    prefix,
    ...(telemetry === false ? {} : { telemetry: telemetry ?? queueTelemetry() }),
  });
  worker.on('error', onError ?? reportError('worker', name));
  if (telemetry !== false && depthMetricMs > 0) {
    recordDepth(
      worker,
      name,
      { connection, prefix, telemetry: telemetry ?? queueTelemetry() },
      depthMetricMs,
    );
  }
  return worker;
}
