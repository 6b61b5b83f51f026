import { createWorker } from '@ballast/queue';
import type { Redis } from 'ioredis';
import {
  type Progress,
  runTraining,
  type TrainerClients,
  type TrainerSettings,
  type TrainingOutcome,
} from './pipeline.js';

/**
 * The `training.run` worker. One job at a time by default: training saturates a core, and
 * wasm tfjs is single-threaded. A job whose worker dies is taken up again by BullMQ's
 * stalled-job check; the pipeline then finds the version an earlier attempt registered
 * instead of training a second one.
 */
export function trainingWorker(options: {
  connection: Redis;
  clients: TrainerClients;
  settings: TrainerSettings;
  concurrency?: number;
  prefix?: string;
  onProgress?: (jobId: string, progress: Progress) => void;
}) {
  return createWorker<'training.run', TrainingOutcome>(
    'training.run',
    async (job) => {
      const id = job.id ?? `unnamed-${job.timestamp}`;
      return runTraining({ id, data: job.data }, options.clients, options.settings, async (progress) => {
        options.onProgress?.(id, progress);
        await job.updateProgress({ ...progress });
      });
    },
    {
      connection: options.connection,
      concurrency: options.concurrency ?? 1,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      // Long epochs must not look stalled: the lock is renewed every lockDuration / 2.
      lockDuration: 60_000,
    },
  );
}
