import {
  type BulkJobOptions,
  type Job,
  type JobsOptions,
  Queue,
  type QueueOptions,
  type Telemetry,
} from 'bullmq';
import type { RedisConnection } from './connection.js';
import { DEFAULT_JOB_OPTIONS, DEFAULT_PREFIX, queuePrefix, reportError } from './defaults.js';
import type { QueueName } from './names.js';
import { type JobTypes, parsePayload } from './payloads.js';
import { confirmReplicated } from './replication.js';
import { queueTelemetry } from './telemetry.js';

export interface CreateQueueOptions extends Omit<QueueOptions, 'connection' | 'prefix' | 'telemetry'> {
  /** A client from connectRedis. The queue uses it but never closes it. */
  connection: RedisConnection;
  /** Redis key prefix; default 'ballast' (on a cluster, with the queue's hash tag: queuePrefix). */
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
  /** Set by createQueue: the connection whose replicas confirm each add (replication.ts). */
  connection: RedisConnection | undefined;

  /**
   * Adds a job; with `?waitReplicas=N` in BALLAST_REDIS_URL, resolves only once N replicas
   * hold it too, and rejects (NotReplicatedError) if they do not within REPLICA_WAIT_MS, or
   * if the master that answers does not hold it (replication.ts).
   */
  override async add(jobName: string, data: JobTypes[N], opts?: JobsOptions): Promise<Job<JobTypes[N]>> {
    const job = await super.add(jobName, parsePayload(this.name, data), opts);
    await this.#replicated([job]);
    return job;
  }

  override async addBulk(
    jobs: { name: string; data: JobTypes[N]; opts?: BulkJobOptions }[],
  ): Promise<Job<JobTypes[N]>[]> {
    const added = await super.addBulk(
      jobs.map((job) => ({ ...job, data: parsePayload(this.name, job.data) })),
    );
    await this.#replicated(added);
    return added;
  }

  async #replicated(jobs: readonly Job<JobTypes[N]>[]): Promise<void> {
    if (!this.connection) return;
    const keys = jobs.flatMap((job) => (job.id === undefined ? [] : [this.toKey(job.id)]));
    await confirmReplicated(this.connection, keys, this.toKey('replication-check'));
  }
}

export function createQueue<N extends QueueName>(name: N, options: CreateQueueOptions): BallastQueue<N> {
  const { connection, prefix = DEFAULT_PREFIX, telemetry, onError, defaultJobOptions, ...rest } = options;
  const queue = new BallastQueue<N>(name, {
    ...rest,
    connection,
    prefix: queuePrefix(prefix, name, connection),
    defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...defaultJobOptions },
    ...(telemetry === false ? {} : { telemetry: telemetry ?? queueTelemetry() }),
  });
  queue.connection = connection;
  queue.on('error', onError ?? reportError('queue', name));
  return queue;
}
