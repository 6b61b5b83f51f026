import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { Task } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService, Task as RegistryTask } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { RpcError, type ServiceClient } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';
import { buildBaseline, type ModelBaseline } from './model-baseline.js';
import type { BaselineResolver } from './worker.js';

export { FeatureService, RegistryService };

/** Histogram bins asked of feature for a baseline resolved from lineage. */
export const LINEAGE_BINS = 20;

/**
 * The baseline of a version nobody declared one for: the training statistics of the feature
 * view and dataset version its lineage names (feature's GetFeatureStatistics, overall and
 * per segment; the label's statistics are the prediction's baseline), judged with the
 * defaults. Undefined when the registry does not know the version or its lineage names no
 * feature view; a throw when registry or feature cannot answer (the job is retried).
 */
export function lineageBaselines(
  registry: ServiceClient<typeof RegistryService>,
  feature: ServiceClient<typeof FeatureService>,
  defaults: { windowMs: number },
): BaselineResolver {
  return async (model, version): Promise<ModelBaseline | undefined> => {
    // A version registry does not know is unknown; registry or feature being down is not.
    const found = await registry
      .getModelVersion({ model, version })
      .then((r) => r.version)
      .catch((err: unknown) => {
        if (err instanceof RpcError && err.code === status.NOT_FOUND) return undefined;
        throw err;
      });
    const view = found?.lineage?.featureView;
    if (!view?.name) return undefined;
    const { model: m } = await registry.getModel({ name: model });
    const stats = await feature.getFeatureStatistics({
      view: view.name,
      viewVersion: view.version,
      datasetVersion: found?.lineage?.dataset?.version ?? '',
      bins: LINEAGE_BINS,
    });
    return buildBaseline(model, version, stats.statistics, undefined, {
      windowMs: defaults.windowMs,
      task: m?.task === RegistryTask.CLASSIFICATION ? Task.CLASSIFICATION : Task.REGRESSION,
    });
  };
}
