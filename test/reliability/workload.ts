// The reference workload (DESIGN.md) as the reliability suite uses it: sales records for
// ingest, and a small demand model registered and promoted in the real registry.
import { Aggregation, SourceFieldType } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { FieldType } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { type RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import { type ArtifactFile, modelSignature, saveModelFiles, selectBackend } from '@ballast/ml';
import * as tf from '@tensorflow/tfjs';
import { artifactUploadParts } from './support.js';

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

/** A small seeded MLP, 3 named features -> `prediction`; kernels seeded with `seed` and `seed + 1`. */
export function demandModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [FEATURES.length], name: 'features' });
  const hidden = tf.layers
    .dense({
      units: 16,
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
      name: 'hidden',
    })
    .apply(input) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({
      units: 1,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      name: 'prediction',
    })
    .apply(hidden) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setUserDefinedMetadata({ featureNames: { features: FEATURES } });
  return model;
}

/**
 * Creates model `name` in the registry, uploads `model` as its artifact, registers it as a
 * version with a fixed lineage and serving profile (`seed` in its config) and promotes it
 * (forced, with `reason`); returns the version number. The model stays the caller's.
 */
export async function registerAndPromote(
  registry: ServiceClient<typeof RegistryService>,
  name: string,
  model: tf.LayersModel,
  options: { seed: number; reason: string },
): Promise<number> {
  return registerFilesAndPromote(registry, name, await saveModelFiles(model), modelSignature(model), options);
}

/** registerAndPromote for artifact files as they are (a model.json written by hand included). */
export async function registerFilesAndPromote(
  registry: ServiceClient<typeof RegistryService>,
  name: string,
  files: ArtifactFile[],
  signature: ReturnType<typeof modelSignature>,
  options: { seed: number; reason: string },
): Promise<number> {
  await registry.createModel({ name, task: Task.REGRESSION, ownerTeam: 'forecasting' });
  const uploaded = await registry.uploadArtifact(artifactUploadParts(files));
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
      config: { hyperparameters: { hidden: '16' }, seed: BigInt(options.seed) },
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
    reason: options.reason,
    force: true,
  });
  return version?.version ?? 0;
}

/** Registers the demand model (seed 1) as version 1 of `name` and promotes it. */
export async function registerDemandModel(
  registry: ServiceClient<typeof RegistryService>,
  name = 'demand',
): Promise<number> {
  await selectBackend('cpu');
  const model = demandModel(1);
  try {
    return await registerAndPromote(registry, name, model, { seed: 1, reason: 'reliability suite' });
  } finally {
    model.dispose();
  }
}

export function predictRequest(model = 'demand', i = 0) {
  return { model, rows: [{ features: { price: 5 + (i % 7), promo: i % 2, temperature: 20 + (i % 11) } }] };
}

/** Daily units per warehouse x SKU for `days` days, as one columnar batch (the training e2e's shape). */
export function dailySales(dataset: string, days = 60) {
  const rows: Array<{
    id: string;
    day: number;
    w: string;
    s: string;
    units: number;
    price: number;
    promo: boolean;
  }> = [];
  const start = Date.UTC(2024, 0, 1);
  for (const [wi, w] of ['W1', 'W2'].entries())
    for (const [si, s] of ['S1', 'S2'].entries())
      for (let d = 0; d < days; d++) {
        const promo = (d + si) % 9 === 0;
        const price = 5 + si + ((d * 7) % 5) * 0.2;
        const weekly = [1, 0.9, 0.95, 1, 1.2, 1.5, 1.3][d % 7] ?? 1;
        const units = Math.round(
          (20 + wi * 10) * weekly * (promo ? 1.6 : 1) - price * 1.5 + ((d * 13 + si * 7) % 5),
        );
        rows.push({ id: `${w}-${s}-${d}`, day: start + d * 86_400_000, w, s, units, price, promo });
      }
  const col = <T>(pick: (r: (typeof rows)[number]) => T) => rows.map(pick);
  return {
    dataset,
    source: 'reliability',
    rowCount: rows.length,
    columns: [
      { name: 'event_id', values: { case: 'strings' as const, value: { values: col((r) => r.id) } } },
      {
        name: 'day',
        values: { case: 'timestamps' as const, value: { seconds: col((r) => BigInt(r.day / 1000)) } },
      },
      { name: 'warehouse_id', values: { case: 'strings' as const, value: { values: col((r) => r.w) } } },
      { name: 'sku', values: { case: 'strings' as const, value: { values: col((r) => r.s) } } },
      { name: 'units', values: { case: 'doubles' as const, value: { values: col((r) => r.units) } } },
      { name: 'price', values: { case: 'doubles' as const, value: { values: col((r) => r.price) } } },
      { name: 'promo', values: { case: 'bools' as const, value: { values: col((r) => r.promo) } } },
    ],
  };
}

export const dailySchema = {
  fields: [
    { name: 'event_id', type: FieldType.STRING, required: true },
    { name: 'day', type: FieldType.TIMESTAMP, required: true },
    { name: 'warehouse_id', type: FieldType.STRING, required: true },
    { name: 'sku', type: FieldType.STRING, required: true },
    { name: 'units', type: FieldType.FLOAT, required: true },
    { name: 'price', type: FieldType.FLOAT, required: true },
    { name: 'promo', type: FieldType.BOOL, required: true },
  ],
  eventIdField: 'event_id',
  eventTimeField: 'day',
  entityFields: ['warehouse_id', 'sku'],
  segmentFields: ['warehouse_id'],
};

export const demandView = {
  name: 'demand',
  source: {
    dataset: 'daily',
    eventTimeField: 'day',
    fields: [
      { name: 'event_id', type: SourceFieldType.STRING },
      { name: 'day', type: SourceFieldType.TIMESTAMP },
      { name: 'warehouse_id', type: SourceFieldType.STRING },
      { name: 'sku', type: SourceFieldType.STRING },
      { name: 'units', type: SourceFieldType.FLOAT },
      { name: 'price', type: SourceFieldType.FLOAT },
      { name: 'promo', type: SourceFieldType.BOOL },
    ],
  },
  entityFields: ['warehouse_id', 'sku'],
  segmentFields: ['warehouse_id'],
  label: { name: 'units_next_day', field: 'units', leadDays: 1 },
  features: [
    { name: 'units', transform: { case: 'raw' as const, value: { field: 'units' } } },
    { name: 'units_lag_1', transform: { case: 'lag' as const, value: { field: 'units', days: 1 } } },
    {
      name: 'units_mean_7',
      transform: {
        case: 'rolling' as const,
        value: { field: 'units', aggregation: Aggregation.MEAN, windowDays: 7 },
      },
    },
    { name: 'price', transform: { case: 'raw' as const, value: { field: 'price' } } },
    { name: 'promo', transform: { case: 'raw' as const, value: { field: 'promo' } } },
  ],
};

/** Feature statistics of values spread evenly over [lo, hi) (10 bins of 100), over all rows: a monitor baseline. */
export function flatStatistics(feature: string, lo: number, hi: number, isLabel = false) {
  const edges = Array.from({ length: 11 }, (_, i) => lo + ((hi - lo) * i) / 10);
  return {
    feature,
    isLabel,
    segment: '',
    count: 1_000n,
    nullCount: 0n,
    mean: (lo + hi) / 2,
    std: (hi - lo) / Math.sqrt(12),
    min: lo,
    max: hi,
    histogram: { edges, counts: edges.slice(1).map(() => 100n) },
  };
}
