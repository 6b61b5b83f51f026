import { SignatureSchema } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import {
  loadModelFromFiles,
  modelSignature,
  saveModelFiles,
  selectBackend,
  trainTabularModel,
} from '@ballast/ml';
import { create } from '@bufbuild/protobuf';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changed, createModel, download, upload, versionRequest } from './test-fixtures.js';
import { BACKENDS, startTestRegistry, type TestRegistry } from './test-registry.js';

// Units sold from (price, promotion, weekday, warehouse size): a small, learnable relation.
function demand(rows: number): { features: number[][]; labels: number[] } {
  const features: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < rows; i++) {
    const row = [1 + (i % 7) * 0.5, i % 3 === 0 ? 1 : 0, i % 7, 1 + (i % 5)];
    features.push(row);
    labels.push(20 - 3 * (row[0] ?? 0) + 8 * (row[1] ?? 0) + 0.5 * (row[2] ?? 0) + 2 * (row[3] ?? 0));
  }
  return { features, labels };
}

const toSpec = (t: { name: string; dtype: string | null; shape: number[] | null }) => ({
  name: t.name,
  dtype: t.dtype ?? 'float32',
  shape: (t.shape ?? []).map(BigInt),
});

describe.each(BACKENDS)('a real TF.js model through the registry on %s', (kind) => {
  let registry: TestRegistry;
  beforeAll(async () => {
    await selectBackend('auto');
    registry = await startTestRegistry(kind);
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('is trained, uploaded, registered, downloaded, loaded back and predicts identically', async () => {
    const { features, labels } = demand(256);
    const trained = await trainTabularModel({
      features,
      labels,
      task: 'regression',
      hiddenUnits: [8],
      epochs: 3,
      batchSize: 32,
      learningRate: 0.01,
      seed: 7,
    });
    const files = await saveModelFiles(trained.model);
    const { client } = registry;
    await createModel(client, 'tfjs-demand');
    const digest = await upload(client, files);
    const signature = modelSignature(trained.model);
    const request = versionRequest('tfjs-demand', digest);
    const { version } = await client.createModelVersion(
      changed(request, (r) => {
        r.signature = create(SignatureSchema, {
          inputs: signature.inputs.map(toSpec),
          outputs: signature.outputs.map(toSpec),
        });
      }),
    );
    expect(version?.signature?.inputs[0]?.shape).toEqual([-1n, 4n]);
    expect(version?.artifactDigest).toBe(digest);

    const fetched = await client.getModelVersion({ model: 'tfjs-demand', version: version?.version ?? 0 });
    const back = await download(client, fetched.version?.artifactDigest ?? '', 4096);
    expect(back.map((f) => f.path).sort()).toEqual(files.map((f) => f.path).sort());
    const loaded = await loadModelFromFiles(back);

    const probe = tf.tensor2d(features.slice(0, 16));
    try {
      const expected = (trained.model.predict(probe) as tf.Tensor).dataSync();
      const actual = (loaded.predict(probe) as tf.Tensor).dataSync();
      expect(Array.from(actual)).toEqual(Array.from(expected));
    } finally {
      probe.dispose();
      trained.model.dispose();
      if ('dispose' in loaded) loaded.dispose();
    }
  });
});
