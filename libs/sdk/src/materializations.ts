import {
  type FeatureService,
  type Materialization,
  MaterializationState,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';

/**
 * Feature materializations as the CLI reports them: the feature service keeps the latest run
 * of each (view version, dataset version), a `features.materialize` job's and a backfill's
 * alike, with the reason of a failed one. A failed run is background work nobody waits on,
 * so `ballast jobs`, `status` and `datasets show` name it.
 */
type Feature = ServiceClient<typeof FeatureService>;

/** The most runs one listing asks for (the service's page limit). */
const PAGE = 1000;

export const stateName = (state: MaterializationState) =>
  MaterializationState[state]?.toLowerCase() ?? String(state);

/** A run as one line: `materialize <dataset>@<version> failed: <reason> (view v, job 7, 3 attempts)`. */
export function runLine(run: Materialization, dataset: string): string {
  const what = `materialize ${dataset}@${run.datasetVersion.slice(0, 12)}`;
  const detail = `view ${run.view}, ${run.trigger || 'rpc'}, ${run.attempts} attempt${run.attempts === 1 ? '' : 's'}`;
  if (run.state === MaterializationState.FAILED)
    return `${what} failed: ${run.reason || 'no reason recorded'} (${detail})`;
  if (run.state === MaterializationState.SUCCEEDED)
    return `${what} succeeded: ${run.rows} rows, ${run.entities} entities (${detail})`;
  return `${what} ${stateName(run.state)} (${detail})`;
}

/** A run's state, with a failure's reason: `succeeded`, `failed: reason`. */
export const stateCell = (run: Materialization) =>
  `${stateName(run.state)}${run.state === MaterializationState.FAILED ? `: ${run.reason}` : ''}`;

/** A run in a table cell, naming its view: `view succeeded`, `view failed: reason`. */
export const runCell = (run: Materialization) => `${run.view} ${stateCell(run)}`;

/** The dataset each view version reads, looked up once per view version. */
async function datasetsOf(feature: Feature, runs: readonly Materialization[]): Promise<Map<string, string>> {
  const datasets = new Map<string, string>();
  for (const run of runs) {
    if (datasets.has(run.viewVersion)) continue;
    const { view } = await feature.getFeatureView({ name: run.view, version: run.viewVersion });
    datasets.set(run.viewVersion, view?.definition?.source?.dataset ?? run.view);
  }
  return datasets;
}

/** Failed materializations (newest first), each as its line naming the dataset and version. */
export async function failedMaterializations(
  feature: Feature,
): Promise<{ run: Materialization; dataset: string; line: string }[]> {
  const { materializations } = await feature.listMaterializations({
    state: MaterializationState.FAILED,
    pageSize: PAGE,
  });
  const datasets = await datasetsOf(feature, materializations);
  return materializations.map((run) => {
    const dataset = datasets.get(run.viewVersion) ?? run.view;
    return { run, dataset, line: runLine(run, dataset) };
  });
}

/** The runs over one dataset version, every view's latest. */
export async function materializationsOf(
  feature: Feature,
  datasetVersion: string,
): Promise<Materialization[]> {
  const { materializations } = await feature.listMaterializations({ datasetVersion, pageSize: PAGE });
  return materializations;
}
