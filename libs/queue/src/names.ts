/**
 * The queues services meet on (DESIGN.md, "The loop"). Dots, not colons: BullMQ builds
 * Redis keys as `<prefix>:<queue>:<suffix>` and rejects a queue name containing ':'.
 */
export const QueueNames = {
  featuresMaterialize: 'features.materialize',
  trainingRun: 'training.run',
  monitorPredictions: 'monitor.predictions',
} as const;

export type QueueName = (typeof QueueNames)[keyof typeof QueueNames];

export const queueNames: readonly QueueName[] = Object.values(QueueNames);

export function isQueueName(value: string): value is QueueName {
  return (queueNames as readonly string[]).includes(value);
}

/**
 * The Redis pub/sub channel on which a running `training.run` job is asked to stop. BullMQ
 * can cancel an active job only inside the worker process that runs it, so whoever wants a
 * job cancelled publishes its id here and every trainer checks whether it holds that job.
 */
export const trainingCancelChannel = (prefix: string) =>
  // Callers may hold the queue's own prefix, which on a cluster carries its hash tag
  // (defaults.ts queuePrefix); the channel is named for the plain prefix either way.
  `${prefix.replace(`:{${QueueNames.trainingRun}}`, '')}:training.run:cancel`;
