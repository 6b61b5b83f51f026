import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
} from '@ballast/grpc-kit/testing';
import { modelSignature, type TfModel } from '@ballast/ml';
import { type ArtifactFile, artifactManifest } from '@ballast/ml/artifact';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  referenceModel,
  referencePredict,
  startTestInference,
  type TestInference,
} from './test-support.js';

// Inference against the real registry, started as its own process from its build (the way
// `ballast up` runs it), on a database of this file's own: only the proto is shared.
// A devDependency, so that nx builds the registry before these tests run.
let db: TestDatabase;
let registryProcess: ServiceProcess;
let registry: ServiceClient<typeof RegistryService>;
let t: TestInference;

beforeAll(async () => {
  db = await createTestDatabase('inference_registry');
  registryProcess = await startServiceProcess({
    package: '@ballast/registry',
    env: { ...db.env, BALLAST_REGISTRY_WATCH_POLL_MS: '200' },
    ready: RegistryService.typeName,
    telemetry: false,
  });
  registry = createClient(RegistryService, { address: registryProcess.address, deadlineMs: 30_000 });
  t = await startTestInference({ registryAddress: registryProcess.address });
}, 180_000);

afterAll(async () => {
  await t?.close();
  registry?.close();
  await registryProcess?.stop();
  await db?.close();
});

async function register(files: ArtifactFile[], model: TfModel): Promise<number> {
  const manifest = artifactManifest(files);
  async function* parts() {
    yield {
      part: {
        case: 'manifest' as const,
        value: {
          files: manifest.files.map((f) => ({ path: f.path, size: BigInt(f.size), sha256: f.sha256 })),
        },
      },
    };
    for (const file of files)
      yield { part: { case: 'chunk' as const, value: { path: file.path, data: file.data } } };
  }
  const uploaded = await registry.uploadArtifact(parts());
  const signature = modelSignature(model);
  const spec = (s: (typeof signature.inputs)[number]) => ({
    name: s.name,
    dtype: s.dtype ?? '',
    shape: (s.shape ?? []).map(BigInt),
  });
  const { version } = await registry.createModelVersion({
    model: 'demand',
    artifactDigest: uploaded.manifest?.digest ?? '',
    lineage: {
      dataset: { name: 'sales', version: 'sha256:aaaa' },
      featureView: { name: 'demand_features', version: 'sha256:bbbb' },
      config: { hyperparameters: { hidden: '8' }, seed: 1n },
      environment: { nodeVersion: process.version, tfjsVersion: '4.22.0', backend: 'wasm' },
    },
    metrics: [{ name: 'mae', evalSet: 'holdout', value: 1 }],
    servingProfile: {
      backend: 'wasm',
      latency: [{ batchSize: 1, p50Ms: 1, p99Ms: 2 }],
      costPerMillion: 1,
      costCurrency: 'USD',
    },
    signature: { inputs: signature.inputs.map(spec), outputs: signature.outputs.map(spec) },
  });
  return version?.version ?? 0;
}

describe('with the real registry process', () => {
  it('serves what is promoted, and hot-swaps on the next promotion', async () => {
    await registry.createModel({ name: 'demand', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const v1Files = await demandModelFiles(1);
    const v2Files = await demandModelFiles(2);
    const m1 = await referenceModel(v1Files);
    const m2 = await referenceModel(v2Files);
    expect(await register(v1Files, m1)).toBe(1);
    expect(await register(v2Files, m2)).toBe(2);
    const row = [11, 1, 20];
    const request = {
      model: 'demand',
      rows: [{ features: Object.fromEntries(FEATURES.map((f, i) => [f, row[i] ?? 0])) }],
    };

    await registry.promote({ model: 'demand', version: 1, reason: 'first' });
    await eventually(() => t.pool.find('demand')?.aliases.get('production')?.version === 1, 'v1 serving');
    const first = await t.client.predict(request);
    expect(first.version).toBe(1);
    expect(first.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(
      referencePredict(m1, [row])[0] ?? 0,
      4,
    );

    await registry.promote({ model: 'demand', version: 2, reason: 'better', force: true });
    await eventually(() => t.pool.find('demand')?.aliases.get('production')?.version === 2, 'v2 serving');
    const second = await t.client.predict(request);
    expect(second.version).toBe(2);
    expect(second.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(
      referencePredict(m2, [row])[0] ?? 0,
      4,
    );
  });
});
