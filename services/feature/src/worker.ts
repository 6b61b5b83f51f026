import { BallastError } from '@ballast/grpc-kit';
import { type CreateWorkerOptions, createWorker, QueueNames, UnrecoverableError } from '@ballast/queue';
import type { Materializer } from './materialize.js';
import type { FeatureStore } from './store.js';
import type { Views } from './views.js';

export interface MaterializeJobResult {
  views: { name: string; version: string; rows: number; entities: number }[];
}

/**
 * The `features.materialize` worker: a committed dataset version materializes the latest
 * version of every view over that dataset (older versions: the Materialize RPC). Progress
 * is reported on the job (0-100), and each view's run (a failed attempt with its reason) in
 * materialization_runs, which ListMaterializations reads; the job's span continues the trace of the commit that
 * enqueued it (bullmq-otel), and the ingest reads inside it are child spans.
 */
export function materializeWorker(
  deps: { store: FeatureStore; views: Views; materializer: Materializer },
  options: Omit<CreateWorkerOptions, 'concurrency'>,
) {
  return createWorker<typeof QueueNames.featuresMaterialize, MaterializeJobResult>(
    QueueNames.featuresMaterialize,
    async (job, _token, signal) => {
      const { datasetName, datasetVersion } = job.data;
      const stored = await deps.store.latestViewsOf(datasetName);
      const result: MaterializeJobResult = { views: [] };
      for (const [k, entry] of stored.entries()) {
        const { view } = deps.views.compiled(entry);
        const done = await failOnceIfPermanent(
          deps.materializer.run(view, datasetVersion, {
            progress: (fraction) => job.updateProgress(Math.round(((k + fraction) / stored.length) * 100)),
            signal,
            trigger: `job ${job.id}`,
          }),
        );
        result.views.push({
          name: view.name,
          version: view.version,
          rows: done.rows,
          entities: done.entities,
        });
      }
      await job.updateProgress(100);
      return result;
    },
    { ...options, concurrency: 1 },
  );
}

/**
 * A run that failed on the data or the view (a field of the wrong type, a version the view
 * cannot read) fails the same way on every attempt: the job fails at once, so its run stays
 * FAILED with its reason instead of flipping back to RUNNING for two more doomed attempts.
 * Anything else (ingest unreachable, the database) keeps BullMQ's retries.
 */
async function failOnceIfPermanent<T>(run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (err) {
    if (
      err instanceof BallastError &&
      (err.code === 'failed_precondition' || err.code === 'invalid_argument')
    )
      throw new UnrecoverableError(err.message);
    throw err;
  }
}
