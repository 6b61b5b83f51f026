import type { ModelVersion, RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { RpcError, readAll, type ServiceClient } from '@ballast/grpc-kit';
import { type ArtifactFile, artifactManifest, loadModelFromFiles } from '@ballast/ml';
import { status } from '@grpc/grpc-js';
import type * as tf from '@tensorflow/tfjs';
import { EVAL_SET, type EvalMetric, evaluate, type Holdout } from './evaluate.js';

/**
 * The champion's score on the challenger's exam. Between two trainings the data moves on
 * (that is why we retrain), so production's recorded metrics came from an older, different
 * holdout. Scoring production on this job's holdout, recorded as `holdout@v<N>`, lets the
 * registry's gate compare the two models on the same rows.
 */
export async function productionOnHoldout(
  registry: ServiceClient<typeof RegistryService>,
  model: string,
  task: 'regression' | 'classification',
  view: { name: string; version: string },
  holdout: Holdout,
): Promise<{ metrics: EvalMetric[]; skipped?: string }> {
  let production: ModelVersion | undefined;
  try {
    production = (await registry.getVersionByAlias({ model, alias: 'production' })).version;
  } catch (err) {
    if (err instanceof RpcError && err.code === status.NOT_FOUND)
      return { metrics: [], skipped: 'no production version' };
    throw err;
  }
  if (!production) return { metrics: [], skipped: 'no production version' };
  const its = production.lineage?.featureView;
  // Another view version may order or define its columns differently: its inputs are not ours.
  if (its?.name !== view.name || its.version !== view.version)
    return {
      metrics: [],
      skipped: `production v${production.version} reads ${its?.name}@${its?.version?.slice(0, 12)}, not this view version`,
    };
  const files = await download(registry, production.artifactDigest);
  const loaded = (await loadModelFromFiles(files)) as tf.LayersModel;
  try {
    const evalSet = `${EVAL_SET}@v${production.version}`;
    return { metrics: evaluate(loaded, task, holdout).map((m) => ({ ...m, evalSet })) };
  } finally {
    loaded.dispose();
  }
}

async function download(
  registry: ServiceClient<typeof RegistryService>,
  digest: string,
): Promise<ArtifactFile[]> {
  const chunks = new Map<string, Buffer[]>();
  for (const message of await readAll(() => registry.downloadArtifact({ digest }))) {
    if (message.part.case === 'manifest')
      for (const file of message.part.value.files) chunks.set(file.path, []);
    else if (message.part.case === 'chunk')
      chunks.get(message.part.value.path)?.push(Buffer.from(message.part.value.data));
  }
  const files = [...chunks].map(([path, parts]) => ({ path, data: new Uint8Array(Buffer.concat(parts)) }));
  // The registry verified it on upload; verify the bytes that arrived before scoring them.
  if (artifactManifest(files).digest !== digest)
    throw new Error(`production artifact ${digest.slice(0, 12)} arrived with different bytes`);
  return files;
}
