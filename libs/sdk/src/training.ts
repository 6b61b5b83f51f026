import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import {
  type BallastQueue,
  connectRedis,
  createQueue,
  DEFAULT_PREFIX,
  DEFAULT_REDIS_URL,
  type ModelSpec,
  parsePayload,
  payloadSchemas,
  QueueNames,
  type TrainingRunJob,
  trainingCancelChannel,
  trainingJobId,
} from '@ballast/queue';

/**
 * Training from the outside: enqueue a `training.run` job (its id derived from the request,
 * so asking twice runs once), follow its progress, reproduce a registered version from its
 * lineage, and manage per-model retraining schedules (BullMQ job schedulers).
 */
type TrainingQueue = BallastQueue<'training.run'>;

export interface TrainingProgress {
  stage?: string;
  epoch?: number;
  epochs?: number;
  loss?: number;
  etaMs?: number;
}

export interface TrainingResult {
  model: string;
  version: number;
  artifactDigest: string;
  reused: boolean;
  promotion: string;
  promotionDetail?: string;
  /** A reproduction: `version` is the version re-run; nothing was registered. */
  reproduction?: boolean;
}

/** The `training.run` queue on BALLAST_REDIS_URL for the length of `fn`, closed after it. */
export async function withTrainingQueue<T>(
  env: NodeJS.ProcessEnv,
  fn: (queue: TrainingQueue, redis: ReturnType<typeof connectRedis>) => Promise<T>,
): Promise<T> {
  const redis = connectRedis(env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL);
  const queue = createQueue(QueueNames.trainingRun, { connection: redis });
  try {
    return await fn(queue, redis);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

export async function enqueueTraining(queue: TrainingQueue, job: TrainingRunJob): Promise<string> {
  const id = trainingJobId(job);
  await queue.add('train', job, { jobId: id });
  return id;
}

/** Polls the job until it completes (its result) or fails (an Error with BullMQ's reason). */
export async function waitForTraining(
  queue: TrainingQueue,
  jobId: string,
  onProgress: (progress: TrainingProgress) => void = () => {},
  pollMs = 250,
): Promise<TrainingResult> {
  for (;;) {
    // State first, then the job: a job read before its state could have completed in between,
    // its state 'completed' and its return value still unset in the copy read (a loaded
    // machine made `ballast train --wait` print "Cannot read properties of null").
    const state = await queue.getJobState(jobId);
    const job = await queue.getJob(jobId);
    if (!job || state === 'unknown')
      throw new Error(`training job ${jobId} is not in the queue (removed, or never added)`);
    if (state === 'completed') return job.returnvalue as TrainingResult;
    if (state === 'failed' && job.attemptsMade >= (job.opts.attempts ?? 1))
      throw new Error(`training job ${jobId} failed: ${job.failedReason}`);
    if (job.progress && typeof job.progress === 'object') onProgress(job.progress as TrainingProgress);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * The job that re-runs a registered version: its spec, feature view and dataset version as
 * its lineage recorded them. Training the same lineage on the same backend gives the same
 * artifact digest. The trainer registers nothing for it and moves no alias: it only reports
 * the digest, which `ballast train --reproduce` compares.
 */
export async function reproductionJob(
  registry: ServiceClient<typeof RegistryService>,
  model: string,
  version: number,
): Promise<{ job: TrainingRunJob; artifactDigest: string }> {
  const { version: found } = await registry.getModelVersion({ model, version });
  const lineage = found?.lineage;
  const recorded = lineage?.config?.hyperparameters.spec;
  if (!lineage?.featureView?.name || !lineage.dataset?.version || !recorded)
    throw new Error(
      `${model} v${version} has no complete lineage to reproduce it from (spec, feature view, dataset version)`,
    );
  const spec = payloadSchemas['training.run'].parse({ model, reason: 'x', spec: JSON.parse(recorded) })
    .spec as ModelSpec;
  return {
    job: {
      model,
      reason: `reproduce v${version}`,
      reproduces: version,
      featureView: lineage.featureView.name,
      datasetVersion: lineage.dataset.version,
      spec,
      ...(lineage.config?.hyperparameters.holdout_fraction
        ? { eval: { holdoutFraction: Number(lineage.config.hyperparameters.holdout_fraction) } }
        : {}),
    },
    artifactDigest: found?.artifactDigest ?? '',
  };
}

export interface TrainingSchedule {
  id: string;
  cron: string;
  next: Date | undefined;
  job: TrainingRunJob | undefined;
}

/** Creates or replaces the schedule `id`: the job runs on every tick of the cron pattern. */
export async function scheduleTraining(queue: TrainingQueue, id: string, cron: string, job: TrainingRunJob) {
  await queue.upsertJobScheduler(
    id,
    { pattern: cron },
    { name: 'train', data: parsePayload('training.run', job) },
  );
}

export async function listTrainingSchedules(queue: TrainingQueue): Promise<TrainingSchedule[]> {
  const schedulers = await queue.getJobSchedulers(0, -1, true);
  return schedulers.map((s) => ({
    id: s.key,
    cron: s.pattern ?? '',
    next: s.next ? new Date(s.next) : undefined,
    job: s.template?.data as TrainingRunJob | undefined,
  }));
}

export async function removeTrainingSchedule(queue: TrainingQueue, id: string): Promise<boolean> {
  return queue.removeJobScheduler(id);
}

export interface TrainingJobSummary {
  id: string;
  state: string;
  model: string;
  reason: string;
  /** Epoch milliseconds: added, started, finished. */
  addedAt: number;
  startedAt?: number;
  finishedAt?: number;
  attempts: number;
  progress?: TrainingProgress;
  result?: TrainingResult;
  failedReason?: string;
}

const LISTED_STATES = ['active', 'waiting', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/** The most recent training jobs in every state, newest first. */
export async function listTrainingJobs(queue: TrainingQueue, limit = 20): Promise<TrainingJobSummary[]> {
  const jobs = await queue.getJobs([...LISTED_STATES], 0, limit - 1, false);
  const summaries = await Promise.all(
    jobs.map(async (job) => ({
      id: job.id ?? '',
      state: await job.getState(),
      model: job.data.model,
      reason: job.data.reason,
      addedAt: job.timestamp,
      ...(job.processedOn ? { startedAt: job.processedOn } : {}),
      ...(job.finishedOn ? { finishedAt: job.finishedOn } : {}),
      attempts: job.attemptsMade,
      ...(job.progress && typeof job.progress === 'object'
        ? { progress: job.progress as TrainingProgress }
        : {}),
      ...(job.returnvalue ? { result: job.returnvalue as TrainingResult } : {}),
      ...(job.failedReason ? { failedReason: job.failedReason } : {}),
    })),
  );
  return summaries.sort((a, b) => b.addedAt - a.addedAt).slice(0, limit);
}

/**
 * Cancels a training job: a job still waiting is removed; a running one is asked to stop
 * (it fails with "cancelled" at its next epoch and registers nothing). Says what it did.
 */
export async function cancelTraining(
  queue: TrainingQueue,
  publisher: { publish(channel: string, message: string): Promise<number> },
  jobId: string,
  reason = 'cancelled on request',
): Promise<'removed' | 'asked to stop' | 'no trainer holds it' | 'already finished'> {
  const job = await queue.getJob(jobId);
  if (!job) throw new Error(`training job ${jobId} is not in the queue (removed, or never added)`);
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') return 'already finished';
  if (state !== 'active') {
    await job.remove();
    return 'removed';
  }
  const listeners = await publisher.publish(
    trainingCancelChannel(queue.opts.prefix ?? DEFAULT_PREFIX),
    JSON.stringify({ id: jobId, reason }),
  );
  return listeners > 0 ? 'asked to stop' : 'no trainer holds it';
}
