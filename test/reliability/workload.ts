// The reference workload (DESIGN.md) as the reliability suite uses it: sales records for
// ingest, and a small demand model registered and promoted in the real registry.
import { createHash } from 'node:crypto';
import { FieldType } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { type RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import { modelSignature, saveModelFiles, selectBackend } from '@ballast/ml';
import * as tf from '@tensorflow/tfjs';

export function salesSchema() {
  return {
    fields: [
      { name: 'event_id', type: FieldType.STRING, required: true, maxLength: 64 },
      { name: 'ts', type: FieldType.TIMESTAMP, required: true },
      { name: 'warehouse_id', type: FieldType.CATEGORICAL, required: true, vocabulary: ['w1', 'w2', 'w3'] },
      { name: 'sku', type: FieldType.STRING, required: true, minLength: 1, maxLength: 32 },
      { name: 'units', type: FieldType.INT, required: true, min: 0, max: 10_000 },
    ],
    eventIdField: 'event_id',
    eventTimeField: 'ts',
    entityFields: ['warehouse_id', 'sku'],
    segmentFields: ['warehouse_id'],
  };
}

export const eventId = (n: number) => `e-${String(n).padStart(9, '0')}`;

/** A columnar batch of `count` sales from the n-th on: event ids e-<n>. */
export function salesBatch(dataset: string, first: number, count: number) {
  const ns = Array.from({ length: count }, (_, i) => first + i);
  return {
    dataset,
    source: 'reliability',
    rowCount: count,
    columns: [
      { name: 'event_id', values: { case: 'strings' as const, value: { values: ns.map(eventId) } } },
      {
        name: 'ts',
        values: {
          case: 'timestamps' as const,
          value: { seconds: ns.map((n) => BigInt(1_700_000_000 + n * 60)) },
        },
      },
      {
        name: 'warehouse_id',
        values: { case: 'strings' as const, value: { values: ns.map((n) => `w${(n % 3) + 1}`) } },
      },
      {
        name: 'sku',
        values: { case: 'strings' as const, value: { values: ns.map((n) => `sku-${n % 500}`) } },
      },
      { name: 'units', values: { case: 'ints' as const, value: { values: ns.map((n) => BigInt(n % 40)) } } },
    ],
  };
}

export const FEATURES = ['price', 'promo', 'temperature'];

/** Registers a small demand model (3 named features -> prediction) as version 1 of `name` and promotes it. */
export async function registerDemandModel(
  registry: ServiceClient<typeof RegistryService>,
  name = 'demand',
): Promise<number> {
  await selectBackend('cpu');
  const input = tf.input({ shape: [FEATURES.length], name: 'features' });
  const hidden = tf.layers
    .dense({
      units: 16,
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      name: 'hidden',
    })
    .apply(input) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'prediction' })
    .apply(hidden) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setUserDefinedMetadata({ featureNames: { features: FEATURES } });
  const files = await saveModelFiles(model);
  const signature = modelSignature(model);
  model.dispose();
  await registry.createModel({ name, task: Task.REGRESSION, ownerTeam: 'forecasting' });
  const uploaded = await registry.uploadArtifact(
    (async function* () {
      yield {
        part: {
          case: 'manifest' as const,
          value: {
            files: files.map((f) => ({
              path: f.path,
              size: BigInt(f.data.byteLength),
              sha256: createHash('sha256').update(f.data).digest('hex'),
            })),
          },
        },
      };
      for (const f of files)
        yield { part: { case: 'chunk' as const, value: { path: f.path, data: f.data } } };
    })(),
  );
  const spec = (s: (typeof signature.inputs)[number]) => ({
    name: s.name,
    dtype: s.dtype ?? '',
    shape: (s.shape ?? []).map(BigInt),
  });
  const { version } = await registry.createModelVersion({
    model: name,
    artifactDigest: uploaded.manifest?.digest ?? '',
    lineage: {
      dataset: { name: 'sales', version: 'sha256:aaaa' },
      featureView: { name: 'demand_features', version: 'sha256:bbbb' },
      config: { hyperparameters: { hidden: '16' }, seed: 1n },
      environment: { nodeVersion: process.version, tfjsVersion: tf.version.tfjs, backend: 'cpu' },
    },
    metrics: [{ name: 'mae', evalSet: 'holdout', value: 1 }],
    servingProfile: {
      backend: 'cpu',
      latency: [{ batchSize: 1, p50Ms: 1, p99Ms: 2 }],
      costPerMillion: 1,
      costCurrency: 'USD',
    },
    signature: { inputs: signature.inputs.map(spec), outputs: signature.outputs.map(spec) },
  });
  await registry.promote({
    model: name,
    version: version?.version ?? 0,
    reason: 'reliability suite',
    force: true,
  });
  return version?.version ?? 0;
}

export function predictRequest(model = 'demand', i = 0) {
  return { model, rows: [{ features: { price: 5 + (i % 7), promo: i % 2, temperature: 20 + (i % 11) } }] };
}
