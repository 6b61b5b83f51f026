import type { FeatureView } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { BallastClients } from './clients.js';
import { ifFound } from './rpc-errors.js';

/**
 * The feature views the CLI can name. The feature service has no list RPC, so a view is found
 * where something refers to it: named like a dataset or a model (as `schema infer` names it),
 * in a model version's lineage, in a materialization run, or among `seeds` (schedules, names
 * the user gave).
 */
export async function knownViews(
  clients: Pick<BallastClients, 'ingest' | 'registry' | 'feature'>,
  seeds: Iterable<string> = [],
): Promise<FeatureView[]> {
  const { datasets } = await clients.ingest.listDatasets({});
  const { models } = await clients.registry.listModels({});
  const names = new Set([...seeds, ...datasets.map((d) => d.name), ...models.map((m) => m.name)]);
  for (const m of models) {
    if (m.latestVersion === 0) continue;
    const { version } = await clients.registry.getModelVersion({ model: m.name, version: m.latestVersion });
    if (version?.lineage?.featureView?.name) names.add(version.lineage.featureView.name);
  }
  const { materializations } = await clients.feature.listMaterializations({ pageSize: 1000 });
  for (const run of materializations) names.add(run.view);
  const views: FeatureView[] = [];
  for (const name of [...names].sort()) {
    const view = await ifFound(clients.feature.getFeatureView({ name }));
    if (view?.view?.definition) views.push(view.view);
  }
  return views;
}
