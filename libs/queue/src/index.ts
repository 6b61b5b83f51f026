/** Thrown by a job that retrying cannot fix: BullMQ fails it at once, skipping its attempts. */
export { UnrecoverableError } from 'bullmq';
export { type Closable, closeAll } from './close.js';
export {
  connectRedis,
  DEFAULT_REDIS_URL,
  pingRedis,
  type RedisConnection,
  redisTarget,
  redisUrl,
} from './connection.js';
export { DEFAULT_JOB_OPTIONS, DEFAULT_PREFIX, KEEP_COMPLETED, KEEP_FAILED, queuePrefix } from './defaults.js';
export { canonicalJson, trainingJobId } from './job-ids.js';
export { isQueueName, type QueueName, QueueNames, queueNames, trainingCancelChannel } from './names.js';
export {
  type EvalSpec,
  type FeaturesMaterializeJob,
  InvalidPayloadError,
  type JobTypes,
  type ModelSpec,
  type MonitorPredictionsJob,
  type PredictionRecord,
  parsePayload,
  payloadSchemas,
  type TrainingRunJob,
} from './payloads.js';
export { BallastQueue, type CreateQueueOptions, createQueue } from './queue.js';
export { confirmReplicated, NotReplicatedError, REPLICA_WAIT_MS } from './replication.js';
export { createQueueTelemetry, queueTelemetry } from './telemetry.js';
export { type CreateWorkerOptions, createWorker, type JobOf, type JobProcessor } from './worker.js';
