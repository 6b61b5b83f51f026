import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError, type ArtifactFile, artifactManifest, IncompleteArtifactError } from './artifact.js';
import { selectBackend } from './backend.js';
import { loadModelFromFiles, saveModelFiles } from './model-io.js';
import { bytesOf, decode, encode, graphModelFiles, tabularData } from './test-support.js';
import { type TrainedTabularModel, trainTabularModel } from './train.js';

const data = tabularData(128, 3);
const rows = tf.tensor2d(data.features);
const predict = (model: tf.LayersModel | tf.GraphModel, input: tf.Tensor = rows) =>
  tf.tidy(() => bytesOf(model.predict(input) as tf.Tensor));

let regression: TrainedTabularModel;
let classification: TrainedTabularModel;

beforeAll(async () => {
  await selectBackend('auto');
  const common = {
    features: data.features,
    hiddenUnits: [8, 4],
    epochs: 3,
    batchSize: 32,
    learningRate: 0.01,
    seed: 5,
  };
  regression = await trainTabularModel({ ...common, labels: data.regression, task: 'regression' });
  classification = await trainTabularModel({ ...common, labels: data.classes, task: 'classification' });
});

/** The files with model.json replaced by `edit` applied to its parsed JSON. */
function withModelJson(
  files: ArtifactFile[],
  edit: (json: Record<string, unknown>) => unknown,
): ArtifactFile[] {
  return files.map((file) =>
    file.path === 'model.json' ? { path: file.path, data: encode(edit(decode(file.data))) } : file,
  );
}

describe('saveModelFiles / loadModelFromFiles', () => {
  it.each(['regression', 'classification'])(
    'round-trips a trained %s model with bit-identical predictions',
    async (task) => {
      const trained = task === 'regression' ? regression : classification;
      const files = await saveModelFiles(trained.model);
      expect(files.map((file) => file.path)).toEqual(['model.json', 'weights.bin']);
      const loaded = await loadModelFromFiles(files);
      expect(loaded).toBeInstanceOf(tf.LayersModel);
      const [original, reloaded] = [predict(trained.model), predict(loaded)];
      expect(original.byteLength).toBe(128 * 4 * (task === 'regression' ? 1 : 2));
      expect(reloaded).toEqual(original);
      // Saving the loaded model again gives the very same artifact.
      expect(artifactManifest(await saveModelFiles(loaded)).digest).toBe(artifactManifest(files).digest);
    },
  );

  it('writes a standard TF.js model.json with one weights.bin holding every weight', async () => {
    const [modelJson, weights] = await saveModelFiles(regression.model);
    const json = decode(modelJson!.data);
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toBe('TensorFlow.js tfjs-layers v4.22.0');
    const [group] = json.weightsManifest as { paths: string[]; weights: { shape: number[] }[] }[];
    expect(group?.paths).toEqual(['weights.bin']);
    const floats = group!.weights.reduce((sum, weight) => sum + weight.shape.reduce((a, b) => a * b, 1), 0);
    expect(weights!.data.byteLength).toBe(floats * 4);
  });

  it('loads a graph model converted from TensorFlow, from a folder of the artifact', async () => {
    const model = await loadModelFromFiles(graphModelFiles());
    expect(model).toBeInstanceOf(tf.GraphModel);
    const output = tf.tidy(() =>
      Array.from(
        (
          model.predict(
            tf.tensor2d([
              [1, 1],
              [2, 3],
            ]),
          ) as tf.Tensor
        ).dataSync(),
      ),
    );
    expect(output).toEqual([5, 13]);
  });

  it('refuses weight paths that leave the artifact before tfjs reads anything', async () => {
    const files = withModelJson(await saveModelFiles(regression.model), (json) => {
      (json.weightsManifest as { paths: string[] }[])[0]!.paths = ['../weights.bin'];
      return json;
    });
    const loading = loadModelFromFiles(files);
    await expect(loading).rejects.toBeInstanceOf(IncompleteArtifactError);
    await expect(loading).rejects.toMatchObject({ unsafe: ['../weights.bin'], extra: ['weights.bin'] });
  });

  it('refuses a missing weight shard, naming it', async () => {
    const [modelJson] = await saveModelFiles(regression.model);
    await expect(loadModelFromFiles([modelJson!])).rejects.toThrow(
      'weightsManifest: artifact is incomplete: missing weight files weights.bin',
    );
  });

  it('refuses a model.json with __proto__ keys', async () => {
    const files = await saveModelFiles(regression.model);
    const text = new TextDecoder().decode(files[0]!.data).replace('{', '{"__proto__":{"polluted":true},');
    const loading = loadModelFromFiles([
      { path: 'model.json', data: new TextEncoder().encode(text) },
      files[1]!,
    ]);
    await expect(loading).rejects.toBeInstanceOf(ArtifactError);
    await expect(loading).rejects.toMatchObject({ field: 'model.json', rule: 'no-prototype-keys' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses truncated weights', async () => {
    const [modelJson, weights] = await saveModelFiles(regression.model);
    const truncated = { path: 'weights.bin', data: weights!.data.subarray(0, weights!.data.byteLength - 4) };
    await expect(loadModelFromFiles([modelJson!, truncated])).rejects.toMatchObject({ rule: 'weights-size' });
  });
});
