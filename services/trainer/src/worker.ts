import { createWorker, DEFAULT_PREFIX, type RedisConnection, trainingCancelChannel } from '@ballast/queue';
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
 * stalled-job check once its lock expires; the pipeline then finds the version an earlier
 * attempt registered instead of training a second one.
 */
export function trainingWorker(options: {
  connection: RedisConnection;
  clients: TrainerClients;
  settings: TrainerSettings;
  concurrency?: number;
  prefix?: string;
  /** How long a job's lock lasts without renewal (renewed every half of it); default 60 s. */
  lockDurationMs?: number;
  onProgress?: (jobId: string, progress: Progress) => void;
}) {
  const lockDuration = options.lockDurationMs ?? 60_000;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const worker = createWorker<'training.run', TrainingOutcome>(
    'training.run',
    async (job, _token, signal) => {
      const id = job.id ?? `unnamed-${job.timestamp}`;
      return runTraining(
        { id, data: job.data },
        options.clients,
        options.settings,
        async (progress) => {
          options.onProgress?.(id, progress);
          await job.updateProgress({ ...progress });
        },
        signal,
      );
    },
    {
      connection: options.connection,
      concurrency: options.concurrency ?? 1,
      prefix,
      // Long epochs must not look stalled: the lock is renewed every lockDuration / 2, and a
      // dead worker's job is noticed within one stalled check after its lock has expired.
      lockDuration,
      stalledInterval: Math.min(30_000, lockDuration),
    },
  );

  // Cancellation requests from other processes (`ballast jobs cancel`): only the worker
  // running a job can abort it; the others ignore the id.
  const subscriber = options.connection.duplicate();
  const channel = trainingCancelChannel(prefix);
  subscriber.on('message', (_channel: string, message: string) => {
    try {
      const { id, reason } = JSON.parse(message) as { id?: unknown; reason?: unknown };
      if (typeof id === 'string') worker.cancelJob(id, typeof reason === 'string' ? reason : 'cancelled');
    } catch {
      // Not ours to understand: a malformed request cancels nothing.
    }
  });
  subscriber.on('error', () => {});
  void subscriber.subscribe(channel).catch(() => {});
  const close = worker.close.bind(worker);
  worker.close = async (force?: boolean) => {
    subscriber.disconnect();
    return close(force);
  };
  return worker;
}
