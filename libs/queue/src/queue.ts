import {
  type BulkJobOptions,
  type Job,
  type JobsOptions,
  Queue,
  type QueueOptions,
  type Telemetry,
} from 'bullmq';
import type { Redis } from 'ioredis';
import { DEFAULT_JOB_OPTIONS, DEFAULT_PREFIX, reportError } from './defaults.js';
import type { QueueName } from './names.js';
import { type JobTypes, parsePayload } from './payloads.js';
import { queueTelemetry } from './telemetry.js';

export interface CreateQueueOptions extends Omit<QueueOptions, 'connection' | 'prefix' | 'telemetry'> {
  /** A client from connectRedis. The queue uses it but never closes it. */
  connection: Redis;
  /** Redis key prefix; default 'ballast'. */
  prefix?: string;
  /** Defaults to the shared bullmq-otel telemetry; `false` turns tracing off. */
  telemetry?: Telemetry | false;
  /** Where connection errors go; default: one line on stderr. */
  onError?: (error: Error) => void;
}

/**
 * A BullMQ queue that only accepts its own payload type, and checks it at run time as well,
 * so a bad job is refused to the caller that made it rather than failing later in a worker.
 */
export class BallastQueue<N extends QueueName> extends Queue<
  JobTypes[N],
  unknown,
  string,
  JobTypes[N],
  unknown,
  string
> {
  declare readonly name: N;

  override async add(jobName: string, data: JobTypes[N], opts?: JobsOptions): Promise<Job<JobTypes[N]>> {
    return super.add(jobName, parsePayload(this.name, data), opts);
  }

  override async addBulk(
    jobs: { name: string; data: JobTypes[N]; opts?: BulkJobOptions }[],
  ): Promise<Job<JobTypes[N]>[]> {
    return super.addBulk(jobs.map((job) => ({ ...job, data: parsePayload(this.name, job.data) })));
  }
}

export function createQueue<N extends QueueName>(name: N, options: CreateQueueOptions): BallastQueue<N> {
  const { connection, prefix = DEFAULT_PREFIX, telemetry, onError, defaultJobOptions, ...rest } = options;
  const queue = new BallastQueue<N>(name, {
    ...rest,
    connection,
    prefix,
    defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...defaultJobOptions },
    ...(telemetry === false ? {} : { telemetry: telemetry ?? queueTelemetry() }),
  });
  queue.on('error', onError ?? reportError('queue', name));
  return queue;
}
