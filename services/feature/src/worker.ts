import { type CreateWorkerOptions, createWorker, QueueNames } from '@ballast/queue';
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
        const done = await deps.materializer.run(view, datasetVersion, {
          progress: (fraction) => job.updateProgress(Math.round(((k + fraction) / stored.length) * 100)),
          signal,
          trigger: `job ${job.id}`,
        });
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
